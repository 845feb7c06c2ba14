"""What the loop is given besides its collaborators: its timing, and the hooks of the served
process (systemd, the outbox sender, the garbage collector)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    """When the loop acts, in seconds (see README for each)."""

    poll_interval: float = 15.0
    watermark_lag: float = 30.0  # how late a commit may arrive and still be read
    backfill: float = 0.0  # how far back a first start reads changes
    reconcile_interval: float = 600.0  # tracked tickets checked against the open set


@dataclass(frozen=True)
class Hooks:
    """What the served process adds: ``heartbeat(ready, status)`` after every cycle and at
    least every heartbeat_interval (the systemd watchdog); ``sync_progress(count)`` after
    every batch of a sync (a million tickets take minutes, and systemd must hear that it
    advances); ``on_outbox()`` after outbox rows are committed; ``freeze_gc`` hides what the
    first sync leaves from the collector (not in tests sharing one interpreter)."""

    heartbeat: Callable[[bool, str], None] | None = None
    heartbeat_interval: float = 1.0
    sync_progress: Callable[[int], None] | None = None
    on_outbox: Callable[[], None] | None = None
    freeze_gc: bool = False

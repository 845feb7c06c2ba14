"""The values that travel between the engine side and the daemon's own store: what to
record, and what the store found new. Pure: no I/O, no driver types."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from sla_monitor.engine.clocks import Breach, Completion
from sla_monitor.engine.ledger import LedgerEntry


@dataclass(frozen=True, slots=True)
class TicketOutcomes:
    """A ticket's breaches and completions as the engine found them, for recording."""

    ticket_id: str
    priority: str
    queue: str
    breaches: tuple[Breach, ...]
    completions: tuple[Completion, ...]
    # Who the ticket is for, and the policy that judged it: recorded with each row, for the
    # reports (sla_monitor.report). None when the helpdesk does not say.
    customer: str | None = None
    organization: str | None = None
    policy: str | None = None
    # The ticket's ledger entries not known to be recorded (sla_monitor.engine.ledger), and
    # the instant they were derived at: once recorded, every entry up to it is.
    ledger: tuple[LedgerEntry, ...] = ()
    ledger_through: datetime | None = None


def merge_outcomes(older: TicketOutcomes | None, newer: TicketOutcomes) -> TicketOutcomes:
    """Two unrecorded judgements of one ticket as one: the newer one's outcomes, and the
    ledger entries of both (a newer judgement may hand over only what is new since the last
    recording, so an older one's entries still waiting must not be dropped)."""
    if older is None or not older.ledger:
        return newer
    known = {entry.identity for entry in newer.ledger}
    kept = tuple(entry for entry in older.ledger if entry.identity not in known)
    return replace(newer, ledger=kept + newer.ledger) if kept else newer


@dataclass(frozen=True, slots=True)
class EscalationRow:
    """An escalation the engine calls for, with the alert the channels will be sent."""

    dedup_key: str
    ticket_id: str
    clock: str
    level: str
    channels: tuple[str, ...]
    alert: dict[str, Any]


@dataclass(frozen=True, slots=True)
class BacklogSummary:
    """A first start's backlog, told once per level and channel (sla_monitor.escalation_planner
    .backlog_alerts): queued with the first watermark, so exactly once per first start."""

    source: str
    started_at: datetime  # the first start's instant: part of every summary's dedup key
    helpdesk_url: str
    # The board's address (http.public_url, ending in "/"): linked instead of the helpdesk,
    # with the API's listing of the level's tickets. None: not configured.
    public_url: str | None = None


@dataclass(frozen=True, slots=True)
class EscalationState:
    """Every escalation active for ``tickets`` after this cycle; others on them resolve.

    ``backlog``: the escalations are a first start's backlog, recorded without their own
    trigger (and never resolved on the channels); ``summary``: queue the backlog's summaries."""

    tickets: list[str]
    active: list[EscalationRow]
    backlog: bool = False
    summary: BacklogSummary | None = None


@dataclass(frozen=True, slots=True)
class OwedUpdateRow:
    """A progress update to post, keyed by ticket and update window."""

    idempotency_key: str
    ticket_id: str
    window_start: datetime
    language: str
    body: str
    owed_at: datetime
    # The ticket's groupings when it was owed, recorded with the row for the reports
    # (sla_monitor.report); None when not known (the helpdesk does not say who it is for).
    queue: str | None = None
    priority: str | None = None
    policy: str | None = None
    customer: str | None = None
    organization: str | None = None


@dataclass(frozen=True, slots=True)
class OwedUpdates:
    """Progress updates to queue, at most ``max_per_day`` per ticket, through ``channel``."""

    rows: list[OwedUpdateRow]
    max_per_day: int
    channel: str


@dataclass(frozen=True, slots=True)
class RecordedBreach:
    ticket_id: str
    clock: str
    window_key: str
    priority: str
    queue: str


@dataclass(frozen=True, slots=True)
class RecordedCompletion:
    ticket_id: str
    clock: str
    window_key: str
    met: bool
    elapsed_seconds: float
    priority: str
    queue: str


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """An outbox row just queued: a trigger, resolve or update for one channel."""

    dedup_key: str
    action: str
    channel: str
    level: str | None


@dataclass(frozen=True, slots=True)
class NewlyRecorded:
    """Rows the store had not seen before: exactly these move the counters."""

    breaches: list[RecordedBreach]
    completions: list[RecordedCompletion]
    outbox: list[QueuedMessage] = field(default_factory=list)
    ledger: int = 0  # ledger entries recorded (the others were already)


class Recorder(Protocol):
    """The daemon's own store as the loop sees it (sla_monitor.store.StateStore; an in-memory
    one in sla_monitor.testing). Each method may raise errors.DatabaseUnavailable."""

    async def migrate(self) -> list[int]: ...

    async def load_watermark(self) -> datetime | None: ...

    async def escalated_tickets(self) -> list[str]: ...

    async def record(
        self,
        outcomes: list[TicketOutcomes],
        watermark: datetime | None,
        escalations: EscalationState | None = None,
        updates: OwedUpdates | None = None,
    ) -> NewlyRecorded: ...

    async def ledger(self, ticket_id: str) -> list[LedgerEntry]:
        """The ticket's recorded ledger, in time order."""
        ...

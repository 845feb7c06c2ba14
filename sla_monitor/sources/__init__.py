"""Helpdesk sources: each turns one helpdesk's data into the engine's tickets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sla_monitor.engine import BadRowReason, Ticket


@dataclass(frozen=True, slots=True)
class BadRow:
    """A ticket the source could not read; logged and counted, never fatal."""

    ticket_id: str | None
    reason: BadRowReason
    detail: str


@dataclass(slots=True)
class Batch:
    """Tickets read in one go, the rows that failed, and the newest change time among them."""

    tickets: list[Ticket] = field(default_factory=list)
    bad_rows: list[BadRow] = field(default_factory=list)
    newest_change: datetime | None = None


class SourceError(Exception):
    """The source cannot be read as configured (a query returns the wrong columns, ...)."""


class Source(Protocol):
    name: str

    def open_tickets(self) -> AsyncIterator[Batch]:
        """Every ticket not in a resolved status, in batches."""
        ...

    def changed_since(self, since: datetime) -> AsyncIterator[Batch]:
        """Every ticket changed after ``since``, oldest change first, in batches."""
        ...

    def forget_reads(self) -> None:
        """The next changed_since returns every ticket changed, also those it would leave
        out as read already and unchanged (a takeover records what a standby judged)."""
        ...

    async def database_now(self) -> datetime:
        """The helpdesk database's own clock: change times are compared with it, never with
        the daemon's, so a skewed host clock cannot make the watermark skip a change."""
        ...

    async def open_ticket_ids(self) -> set[str]:
        """The ids of every ticket not in a resolved status: tracked tickets missing from it
        were deleted, merged away or otherwise left the open set."""
        ...

    async def ticket(self, ticket_id: str) -> Ticket | BadRow | None:
        """One ticket by id, open or resolved, with its events; a BadRow when it cannot be
        read, None when the helpdesk has none (``explain`` and the per-ticket API)."""
        ...

"""In-memory stand-ins for the helpdesk source and the daemon's store, so that the loop's logic
(polls, outages, reconciliation, recording once) is tested without PostgreSQL. They keep the
contracts of the real ones (sources.Source, records.Recorder) in plain Python; the integration
suite runs the same loop against the real database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from sla_monitor.engine import Ticket
from sla_monitor.engine.ledger import LedgerEntry, ledger_order
from sla_monitor.errors import DatabaseUnavailable
from sla_monitor.records import (
    EscalationState,
    NewlyRecorded,
    OwedUpdates,
    QueuedMessage,
    RecordedBreach,
    RecordedCompletion,
    TicketOutcomes,
)
from sla_monitor.sources import Batch


@dataclass
class MemorySource:
    """A helpdesk as a dict of tickets, each stamped with the instant it last changed."""

    clock: Callable[[], datetime]
    resolved: frozenset[str] = frozenset({"resolved", "closed"})
    name: str = "helpdesk"
    batch_size: int = 100
    tickets: dict[str, tuple[Ticket, datetime]] = field(default_factory=dict)
    away: bool = False  # every call raises DatabaseUnavailable, as during an outage

    def put(self, ticket: Ticket) -> None:
        """Adds or changes a ticket, stamped now."""
        self.tickets[ticket.ticket_id] = (ticket, self.clock())

    def delete(self, ticket_id: str) -> None:
        del self.tickets[ticket_id]

    def _check(self) -> None:
        if self.away:
            raise DatabaseUnavailable(ConnectionRefusedError("the helpdesk database is away"))

    async def _batches(self, rows: Iterable[tuple[Ticket, datetime]]) -> AsyncIterator[Batch]:
        self._check()
        rows = sorted(rows, key=lambda row: row[1])
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start : start + self.batch_size]
            yield Batch(tickets=[t for t, _ in chunk], newest_change=max(c for _, c in chunk))

    def open_tickets(self) -> AsyncIterator[Batch]:
        return self._batches(r for r in self.tickets.values() if r[0].status not in self.resolved)

    def changed_since(self, since: datetime) -> AsyncIterator[Batch]:
        return self._batches(r for r in self.tickets.values() if r[1] > since)

    def forget_reads(self) -> None:
        """Nothing to forget: every changed_since returns every ticket changed."""

    async def database_now(self) -> datetime:
        self._check()
        return self.clock()

    async def open_ticket_ids(self) -> set[str]:
        self._check()
        return {t for t, (ticket, _) in self.tickets.items() if ticket.status not in self.resolved}

    async def ticket(self, ticket_id: str) -> Ticket | None:
        self._check()
        found = self.tickets.get(ticket_id)
        return None if found is None else found[0]


Whom = tuple[str | None, str | None, str | None]  # customer, organization, policy


@dataclass
class MemoryStore:
    """The daemon's schema as sets: each breach, completion, escalation and update once."""

    source: str = "helpdesk"
    away: bool = False
    watermark: datetime | None = None
    breaches: set[tuple[str, str, str]] = field(default_factory=set)
    completions: set[tuple[str, str, str]] = field(default_factory=set)
    # The columns of migration 0007 per breach and completion key: customer, organization,
    # policy (as the state store records them beside each row).
    breach_customers: dict[tuple[str, str, str], Whom] = field(default_factory=dict)
    completion_customers: dict[tuple[str, str, str], Whom] = field(default_factory=dict)
    escalations: dict[str, bool] = field(default_factory=dict)  # dedup key -> active
    escalated: dict[str, str] = field(default_factory=dict)  # dedup key -> ticket
    updates: set[str] = field(default_factory=set)
    # The ledger: per (ticket, entry identity) the entry and its customer and organization.
    ledger_entries: dict[tuple[str, tuple[object, ...]], tuple[LedgerEntry, Whom]] = field(
        default_factory=dict
    )
    outbox: list[QueuedMessage] = field(default_factory=list)
    calls: int = 0  # every call, failed or not: how often the loop reached for the database

    def _check(self) -> None:
        self.calls += 1
        if self.away:
            raise DatabaseUnavailable(ConnectionRefusedError("the state database is away"))

    async def migrate(self) -> list[int]:
        self._check()
        return []

    async def load_watermark(self) -> datetime | None:
        self._check()
        return self.watermark

    async def escalated_tickets(self) -> list[str]:
        self._check()
        return sorted({self.escalated[key] for key, active in self.escalations.items() if active})

    async def record(
        self,
        outcomes: list[TicketOutcomes],
        watermark: datetime | None,
        escalations: EscalationState | None = None,
        updates: OwedUpdates | None = None,
    ) -> NewlyRecorded:
        self._check()
        new = NewlyRecorded([], [])
        appended = 0
        for o in outcomes:
            for b in o.breaches:
                if (key := (o.ticket_id, b.clock.value, b.key)) not in self.breaches:
                    self.breaches.add(key)
                    self.breach_customers[key] = (o.customer, o.organization, o.policy)
                    new.breaches.append(RecordedBreach(*key, o.priority, o.queue))
            for c in o.completions:
                if (key := (o.ticket_id, c.clock.value, c.key)) not in self.completions:
                    self.completions.add(key)
                    self.completion_customers[key] = (o.customer, o.organization, o.policy)
                    new.completions.append(
                        RecordedCompletion(*key, c.met, c.elapsed_seconds, o.priority, o.queue)
                    )
            for entry in o.ledger:
                if (identity := (o.ticket_id, entry.identity)) not in self.ledger_entries:
                    self.ledger_entries[identity] = (entry, (o.customer, o.organization, None))
                    appended += 1
        if escalations is not None:
            self._escalate(escalations, new)
        if updates is not None:
            for row in updates.rows:
                if row.idempotency_key not in self.updates:
                    self.updates.add(row.idempotency_key)
                    message = QueuedMessage(row.idempotency_key, "update", updates.channel, None)
                    new.outbox.append(message)
        self.outbox += new.outbox
        if watermark is not None:
            self.watermark = watermark
        return replace(new, ledger=appended)

    async def ledger(self, ticket_id: str) -> list[LedgerEntry]:
        self._check()
        found = [e for (t, _), (e, _) in self.ledger_entries.items() if t == ticket_id]
        return sorted(found, key=ledger_order)

    def _escalate(self, state: EscalationState, new: NewlyRecorded) -> None:
        wanted = {row.dedup_key for row in state.active}
        tickets = set(state.tickets)
        for key, active in list(self.escalations.items()):
            if active and self.escalated[key] in tickets and key not in wanted:
                self.escalations[key] = False
                new.outbox.append(QueuedMessage(key, "resolve", "channels", None))
        for row in state.active:
            if row.dedup_key not in self.escalations:
                self.escalations[row.dedup_key] = True
                self.escalated[row.dedup_key] = row.ticket_id
                new.outbox.append(QueuedMessage(row.dedup_key, "trigger", "channels", row.level))

"""Reads tickets and their events with the configured SQL, streaming through a cursor.

Ticket queries return: ticket_id, created_at, updated_at, queue, status, priority, and
optionally subject, language and timezone (the requester's), and who the ticket is for:
customer (the requester's id or e-mail), organization and attributes (a JSON object of helpdesk
fields: plan, type, channel, ...; json or jsonb, which asyncpg returns as text, or text holding
JSON). Attributes that are not a JSON object make the row bad (bad_attributes).
The events query ($1: ticket ids; optionally $2: the author sla-monitor posts updates as)
returns: ticket_id, at, kind, value and optionally previous_value; each ticket's events are
sorted by time here (stably: events stamped alike keep the query's order). Return them in the
order of an index (the reference schema's ticket_events_ticket: ticket_id, created_at, id) and
order by the table's columns, not by a cast of them: the database then reads the index in
order and sorts nothing.
The re-reads of the watermark lag skip, before any event is fetched, each ticket read since
whose updated_at and number of events (counted by the events query, wrapped) did not change.
Subjects are cut to SUBJECT_LIMIT characters. Statuses, priorities, queues, languages and
time zones, customers and organizations are interned: a million tickets share a few dozen
strings; tickets with the same attributes text share one read-only mapping. The ticket row holds the
current status and priority; the status and priority at creation are the first change's
previous_value, else the current ones when nothing changed, else (a status changed but its
previous value is unknown) the first open status.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from importlib import resources
from sys import intern
from types import MappingProxyType
from typing import Any

import asyncpg

from sla_monitor.engine import BadRowReason, EventKind, Ticket, TicketEvent
from sla_monitor.engine.model import NO_ATTRIBUTES, JsonValue
from sla_monitor.errors import translates
from sla_monitor.sources import BadRow, Batch, SourceError

REFERENCE_SCHEMA = (resources.files("sla_monitor.sources.sql") / "reference_schema.sql").read_text(
    encoding="utf-8"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # before every ticket: "changed since ever"
# The subject travels in every alert and webhook body: a runaway one must not.
SUBJECT_LIMIT = 200
TICKET_COLUMNS = ("ticket_id", "created_at", "updated_at", "queue", "status", "priority")
EVENT_COLUMNS = ("ticket_id", "at", "kind", "value")
_KINDS = {kind.value: kind for kind in EventKind}
# Distinct attribute texts whose parsed mapping is kept for sharing (the cache starts afresh
# when full: it saves memory and parsing, never changes an answer).
_ATTRIBUTES_CACHE = 4096
# The ticket columns that must not be NULL, each with its bad-row reason.
_NOT_NULL = {
    "queue": BadRowReason.NULL_QUEUE,
    "status": BadRowReason.NULL_STATUS,
    "priority": BadRowReason.NULL_PRIORITY,
}


def _missing(record: asyncpg.Record, wanted: Sequence[str], query: str) -> None:
    returned = set(record.keys())
    missing = [column for column in wanted if column not in returned]
    if missing:
        raise SourceError(f"source.{query} must return the columns {', '.join(missing)}")


def _timestamp_problem(value: Any, what: str) -> tuple[BadRowReason, str] | None:
    if value is None:
        return BadRowReason.NULL_TIMESTAMP, f"{what} is NULL"
    if not isinstance(value, datetime):
        return BadRowReason.BAD_TIMESTAMP, f"{what} is {type(value).__name__}, not a timestamp"
    # asyncpg returns PostgreSQL's +/-infinity as datetime.max/min, without a time zone.
    if value.replace(tzinfo=None) in (datetime.max, datetime.min):
        return BadRowReason.INFINITE_TIMESTAMP, f"{what} is infinite"
    if value.tzinfo is None:
        return BadRowReason.NAIVE_TIMESTAMP, f"{what} has no time zone (use timestamptz)"
    return None


class SqlSource:
    """A helpdesk read through configurable SQL on an asyncpg pool. A database that is away
    or a query that fails raises DatabaseUnavailable (sla_monitor.errors), while streaming
    too; a query returning the wrong columns raises SourceError."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        name: str,
        changed_tickets_query: str,
        open_tickets_query: str,
        events_query: str,
        resolved_statuses: Sequence[str],
        initial_status: str,
        batch_size: int = 2000,
        updates_author: str = "sla-monitor",
    ) -> None:
        self.name = name
        self._pool = pool
        self._changed = changed_tickets_query
        self._open = open_tickets_query
        self._events = events_query
        self._resolved = list(resolved_statuses)
        self._initial_status = initial_status
        self._updates_author = updates_author
        self._events_arguments: int | None = None  # $1 ids, and optionally $2 the author
        self._batch_size = batch_size
        self._attributes: dict[str, Mapping[str, JsonValue]] = {}
        # Per ticket read by changed_since (and taken by its consumer): its updated_at and
        # how many event rows it had. Only tickets changed since the oldest watermark still
        # re-read are kept: the lag window's, a few per change.
        self._seen: dict[str, tuple[datetime, int]] = {}
        self._counting: str | None = None

    def open_tickets(self) -> AsyncIterator[Batch]:
        return self._stream(self._open, "open_tickets_query", self._resolved)

    def changed_since(self, since: datetime) -> AsyncIterator[Batch]:
        """Tickets changed after ``since``; a ticket read here before, whose updated_at and
        event count are still the same, is left out (a re-read of the watermark lag: judging
        it again would change nothing) and only its updated_at moves the batch's newest."""
        seen = self._seen
        for ticket_id in [t for t, (changed, _) in seen.items() if not changed > since]:
            del seen[ticket_id]  # never re-read: the query asks for later changes only
        return self._stream(self._changed, "changed_tickets_query", since, remember=True)

    def forget_reads(self) -> None:
        self._seen.clear()

    async def ticket(self, ticket_id: str) -> Ticket | BadRow | None:
        """One ticket by id, open or resolved, with its events (a BadRow when it cannot be
        read; None when there is none): the configured changed-tickets query, since the
        epoch, narrowed to that id (PostgreSQL pushes the condition into the query)."""
        query = (
            f"SELECT * FROM ({self._changed.strip().rstrip(';')}) AS changed_tickets "
            "WHERE ticket_id::text = $2::text"
        )
        async for batch in self._stream(query, "changed_tickets_query", _EPOCH, ticket_id):
            if batch.tickets:
                return batch.tickets[0]
            if batch.bad_rows:
                return batch.bad_rows[0]
        return None

    @translates
    async def database_now(self) -> datetime:
        async with self._pool.acquire() as conn:
            now: datetime = await conn.fetchval("SELECT clock_timestamp()")
        return now

    @translates
    async def open_ticket_ids(self) -> set[str]:
        # The configured open-tickets query, reduced to its ids: PostgreSQL computes only what
        # the outer query reads, and no event is fetched.
        query = f"SELECT ticket_id::text FROM ({self._open.strip().rstrip(';')}) AS open_tickets"
        async with self._pool.acquire() as conn, conn.transaction(readonly=True):
            rows = await conn.fetch(query, self._resolved)
        return {row[0] for row in rows}

    @translates
    async def _stream(
        self, query: str, name: str, *args: Any, remember: bool = False
    ) -> AsyncIterator[Batch]:
        async with self._pool.acquire() as conn, conn.transaction(readonly=True):
            cursor = conn.cursor(query, *args, prefetch=self._batch_size)
            rows: list[asyncpg.Record] = []
            async for row in cursor:
                if not rows:
                    _missing(row, TICKET_COLUMNS, name)
                rows.append(row)
                if len(rows) >= self._batch_size:
                    async for batch in self._batches(conn, rows, remember):
                        yield batch
                    rows = []
            if rows:
                async for batch in self._batches(conn, rows, remember):
                    yield batch

    async def _batches(
        self, conn: asyncpg.Connection, rows: list[asyncpg.Record], remember: bool
    ) -> AsyncIterator[Batch]:
        """The batch of ``rows``; when ``remember``, without the tickets unchanged since
        they were last read, and remembering what is read once the consumer took it."""
        if not remember:
            yield await self._batch(conn, rows)
            return
        unchanged: set[str] = set()
        seen = self._seen
        candidates = [
            ticket_id
            for row in rows
            if (ticket_id := str(row["ticket_id"])) in seen
            and seen[ticket_id][0] == row["updated_at"]
        ]
        if candidates:
            counts = await self._event_counts(conn, candidates)
            unchanged = {t for t in candidates if counts.get(t, 0) == seen[t][1]}
        counted: dict[str, int] = {}
        batch = await self._batch(conn, rows, unchanged, counted)
        yield batch
        # Taken: remembered. A ticket with an event stamped after its updated_at (an event
        # in the future) is read again, as before, so its time coming is seen.
        for row in rows:
            ticket_id = str(row["ticket_id"])
            if ticket_id in counted and isinstance(row["updated_at"], datetime):
                seen[ticket_id] = (row["updated_at"], counted[ticket_id])

    async def _event_counts(self, conn: asyncpg.Connection, ids: list[str]) -> dict[str, int]:
        """How many rows the events query returns per ticket of ``ids``: the query wrapped
        in a count, so no event row leaves the database."""
        if self._counting is None:
            self._counting = (
                "SELECT events.ticket_id::text, count(*) FROM (\n"
                f"{self._events.strip().rstrip(';')}\n) AS events GROUP BY events.ticket_id"
            )
        rows = await conn.fetch(self._counting, *await self._events_args(conn, ids))
        return {row[0]: row[1] for row in rows}

    async def _events_args(self, conn: asyncpg.Connection, ids: list[str]) -> list[Any]:
        if self._events_arguments is None:
            statement = await conn.prepare(self._events)
            self._events_arguments = len(statement.get_parameters())
        return [ids, self._updates_author][: self._events_arguments]

    async def _batch(
        self,
        conn: asyncpg.Connection,
        rows: list[asyncpg.Record],
        skip: set[str] | frozenset[str] = frozenset(),
        counted: dict[str, int] | None = None,
    ) -> Batch:
        """The tickets of ``rows`` with their events, but those in ``skip`` (whose updated_at
        still counts in newest_change); ``counted`` receives each read ticket's event rows
        (of a ticket with no event stamped after its updated_at)."""
        batch = Batch()
        ids = [t for row in rows if (t := str(row["ticket_id"])) not in skip]
        # Each event with the previous_value of a change, in the order the query gave them.
        events: dict[str, list[tuple[TicketEvent, Any]]] = {ticket_id: [] for ticket_id in ids}
        broken: dict[str, BadRow] = {}
        records = await conn.fetch(self._events, *await self._events_args(conn, ids)) if ids else []
        if records:
            _missing(records[0], EVENT_COLUMNS, "events_query")
        if counted is not None:
            rows_of: dict[str, int] = dict.fromkeys(ids, 0)
            for record in records:
                ticket_id = str(record["ticket_id"])
                if ticket_id in rows_of:
                    rows_of[ticket_id] += 1
        for record in records:
            ticket_id = str(record["ticket_id"])
            if ticket_id not in events or ticket_id in broken:
                continue
            at = record["at"]
            kind = _KINDS.get(record["kind"])
            if kind is None or not isinstance(at, datetime) or at.tzinfo is None:
                # The messages are built only here: most rows are well formed.
                reason, detail = _timestamp_problem(at, f"{record['kind']} event time") or (
                    BadRowReason.UNKNOWN_EVENT_KIND,
                    f"event kind {record['kind']!r} is unknown",
                )
                broken[ticket_id] = BadRow(ticket_id, reason, detail)
                continue
            value = record["value"]
            events[ticket_id].append(
                (
                    TicketEvent(at, kind, None if value is None else intern(str(value))),
                    record.get("previous_value")
                    if kind in (EventKind.STATUS_CHANGE, EventKind.PRIORITY_CHANGE)
                    else None,
                )
            )
        for row in rows:
            ticket_id = str(row["ticket_id"])
            changed = row["updated_at"]
            if (
                isinstance(changed, datetime)
                and changed.tzinfo is not None
                and (batch.newest_change is None or changed > batch.newest_change)
            ):
                batch.newest_change = changed
            if ticket_id in skip:
                continue
            problem = _timestamp_problem(row["created_at"], "created_at")
            if problem is not None:
                batch.bad_rows.append(BadRow(ticket_id, *problem))
                continue
            if ticket_id in broken:
                batch.bad_rows.append(broken[ticket_id])
                continue
            missing = [c for c in _NOT_NULL if row[c] is None]
            if missing:
                batch.bad_rows.append(
                    BadRow(ticket_id, _NOT_NULL[missing[0]], f"{', '.join(missing)} is NULL")
                )
                continue
            attributes = self._attributes_of(row.get("attributes"))
            if attributes is None:
                batch.bad_rows.append(
                    BadRow(
                        ticket_id,
                        BadRowReason.BAD_ATTRIBUTES,
                        "attributes is not a JSON object",
                    )
                )
                continue
            history, first_previous = _in_time_order(events[ticket_id])
            if counted is not None and not (
                history and isinstance(changed, datetime) and history[-1].at > changed
            ):
                counted[ticket_id] = rows_of[ticket_id]
            status_changed = EventKind.STATUS_CHANGE in first_previous
            batch.tickets.append(
                Ticket(
                    ticket_id=ticket_id,
                    created_at=row["created_at"],
                    queue=intern(str(row["queue"])),
                    initial_status=intern(
                        first_previous.get(EventKind.STATUS_CHANGE)
                        or (self._initial_status if status_changed else str(row["status"]))
                    ),
                    initial_priority=intern(
                        first_previous.get(EventKind.PRIORITY_CHANGE) or str(row["priority"])
                    ),
                    subject=_subject(row.get("subject")),
                    events=history,
                    language=_optional_text(row, "language"),
                    timezone=_optional_text(row, "timezone"),
                    customer=_optional_text(row, "customer"),
                    organization=_optional_text(row, "organization"),
                    attributes=attributes,
                )
            )
        return batch

    def _attributes_of(self, value: Any) -> Mapping[str, JsonValue] | None:
        """The attributes column as a read-only mapping (NULL: none), or None when it is not a
        JSON object. A json or jsonb column arrives as text unless a codec is set."""
        if value is None:
            return NO_ATTRIBUTES
        if isinstance(value, dict):  # a codec decoded it already
            return MappingProxyType(value) if value else NO_ATTRIBUTES
        if not isinstance(value, str):
            return None
        attributes = self._attributes.get(value)
        if attributes is None:
            try:
                parsed = json.loads(value)
            except ValueError:
                return None
            if not isinstance(parsed, dict):
                return None
            if len(self._attributes) >= _ATTRIBUTES_CACHE:
                self._attributes.clear()
            attributes = self._attributes[value] = (
                MappingProxyType({intern(k): v for k, v in parsed.items()})
                if parsed
                else NO_ATTRIBUTES
            )
        return attributes


def _in_time_order(
    events: list[tuple[TicketEvent, Any]],
) -> tuple[tuple[TicketEvent, ...], dict[EventKind, str | None]]:
    """A ticket's events sorted by time, whatever the query's ORDER BY (a stable sort: events
    stamped alike keep the query's order), and the previous_value of the first status and
    priority change in that order."""
    ordered = sorted(events, key=lambda pair: pair[0].at)
    first_previous: dict[EventKind, str | None] = {}
    for event, previous in ordered:
        if event.kind in (EventKind.STATUS_CHANGE, EventKind.PRIORITY_CHANGE):
            first_previous.setdefault(event.kind, None if previous is None else str(previous))
    return tuple(event for event, _ in ordered), first_previous


def _subject(value: Any) -> str:
    """The ticket's subject as kept and sent on: at most SUBJECT_LIMIT characters."""
    return str(value or "")[:SUBJECT_LIMIT]


def _optional_text(row: asyncpg.Record, column: str) -> str | None:
    value = row.get(column)
    return None if value is None or value == "" else intern(str(value))

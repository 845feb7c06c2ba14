"""The daemon's own state in PostgreSQL: migrations, watermarks, breaches and completions.

Its SQL lives in queries.sql beside this module (named queries, see sla_monitor.sql); the
migrations are the numbered files of migrations/."""

from __future__ import annotations

import json
import re
from datetime import datetime
from importlib import resources
from typing import Any

import asyncpg

from sla_monitor.engine.ledger import KIND_ORDER, LedgerEntry, LedgerKind
from sla_monitor.engine.model import Clock
from sla_monitor.errors import translates
from sla_monitor.escalation_planner import backlog_alerts
from sla_monitor.records import (
    EscalationState,
    NewlyRecorded,
    OwedUpdates,
    QueuedMessage,
    RecordedBreach,
    RecordedCompletion,
    TicketOutcomes,
)
from sla_monitor.sql import load_queries

# An arbitrary constant: one migrator at a time across every daemon sharing the database.
_MIGRATION_LOCK = 7_362_118_201
_MIGRATION_FILE = re.compile(r"^(\d{4})_(\w+)\.sql$")

_QUERIES = load_queries("sla_monitor.store", "queries.sql")
# Bound at import: a query missing from the file fails the import, not a run.
_CREATE_SCHEMA = _QUERIES["create_schema"]
_CREATE_VERSIONS = _QUERIES["create_versions"]
_MIGRATION_LOCK_SQL = _QUERIES["migration_lock"]
_APPLIED_VERSIONS = _QUERIES["applied_versions"]
_VERSIONS_TABLE = _QUERIES["versions_table"]
_RECORD_VERSION = _QUERIES["record_version"]
_LOAD_WATERMARK = _QUERIES["load_watermark"]
_SAVE_WATERMARK = _QUERIES["save_watermark"]
_RECORD_BREACHES = _QUERIES["record_breaches"]
_RECORD_COMPLETIONS = _QUERIES["record_completions"]
_RESOLVE_ESCALATIONS = _QUERIES["resolve_escalations"]
_TRIGGER_ESCALATIONS = _QUERIES["trigger_escalations"]
_ESCALATED_TICKETS = _QUERIES["escalated_tickets"]
_RECORD_UPDATES = _QUERIES["record_updates"]
_BACKLOG_COUNTS = _QUERIES["backlog_counts"]
_QUEUE_SUMMARIES = _QUERIES["queue_summaries"]
_LEDGER_INCOMING = _QUERIES["ledger_incoming"]
_RECORD_LEDGER = _QUERIES["record_ledger"]
_RECORD_LEDGER_COLUMNS = _QUERIES["record_ledger_columns"]
_LEDGER_COLUMNS = (
    "ticket_id",
    "clock",
    "window_key",
    "kind",
    "at",
    "policy",
    "calendar",
    "priority",
    "elapsed_seconds",
    "previous_policy",
    "queue",
    "customer",
    "organization",
)
_TICKET_LEDGER = _QUERIES["ticket_ledger"]
_KINDS = [kind.value for kind in KIND_ORDER]
_CLOCKS = [clock.value for clock in Clock]


def _migrations() -> list[tuple[int, str, str]]:
    folder = resources.files("sla_monitor.store") / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    return sorted(found)


def migration_versions() -> list[int]:
    """Every migration the package ships, in order."""
    return [version for version, _, _ in _migrations()]


class StateStore:
    """The daemon's schema. ``schema`` is validated by configuration to a plain identifier.

    Every method raises DatabaseUnavailable (sla_monitor.errors) when the database is away or
    a query fails, never the driver's own exceptions."""

    def __init__(self, pool: asyncpg.Pool, schema: str, source: str) -> None:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", schema):
            raise ValueError(f"invalid schema name {schema!r}")
        self._pool = pool
        self._schema = schema
        self._source = source

    def _sql(self, template: str) -> str:
        return template.replace("{schema}", self._schema)

    @translates
    async def migrate(self) -> list[int]:
        """Applies pending migrations in order, under an advisory lock; returns those applied."""
        applied: list[int] = []
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_MIGRATION_LOCK_SQL, _MIGRATION_LOCK)
            await conn.execute(self._sql(_CREATE_SCHEMA))
            await conn.execute(self._sql(_CREATE_VERSIONS))
            done = {row["version"] for row in await conn.fetch(self._sql(_APPLIED_VERSIONS))}
            for version, name, sql in _migrations():
                if version in done:
                    continue
                await conn.execute(self._sql(sql))
                await conn.execute(self._sql(_RECORD_VERSION), version, name)
                applied.append(version)
        return applied

    @translates
    async def missing_migrations(self) -> list[int]:
        """The shipped migrations not applied to the schema (all of them when the schema or
        its table of versions does not exist), in order; changes nothing."""
        async with self._pool.acquire() as conn:
            if not await conn.fetchval(self._sql(_VERSIONS_TABLE)):
                return migration_versions()
            done = {row["version"] for row in await conn.fetch(self._sql(_APPLIED_VERSIONS))}
        return [version for version in migration_versions() if version not in done]

    @translates
    async def load_watermark(self) -> datetime | None:
        """The newest change time already processed, or None on a first start."""
        async with self._pool.acquire() as conn:
            value: datetime | None = await conn.fetchval(self._sql(_LOAD_WATERMARK), self._source)
        return value

    @translates
    async def escalated_tickets(self) -> list[str]:
        """Tickets with an escalation still active (not resolved) for this source."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(self._sql(_ESCALATED_TICKETS), self._source)
        return [row["ticket_id"] for row in rows]

    @translates
    async def record(
        self,
        outcomes: list[TicketOutcomes],
        watermark: datetime | None,
        escalations: EscalationState | None = None,
        updates: OwedUpdates | None = None,
    ) -> NewlyRecorded:
        """Records breaches, completions, ledger entries, escalations and owed updates (with
        their outbox rows) and moves the watermark, in one transaction."""
        breach_rows = [
            (
                o.ticket_id,
                b.clock.value,
                b.key,
                b.breached_at,
                o.priority,
                o.queue,
                o.customer,
                o.organization,
                o.policy,
            )
            for o in outcomes
            for b in o.breaches
        ]
        completion_rows = [
            (
                o.ticket_id,
                c.clock.value,
                c.key,
                c.stopped_at,
                c.met,
                c.elapsed_seconds,
                o.priority,
                o.queue,
                o.customer,
                o.organization,
                o.policy,
            )
            for o in outcomes
            for c in o.completions
        ]
        ledger_rows = [
            (
                o.ticket_id,
                e.clock.value,
                e.window_key,
                e.kind.value,
                e.at,
                e.policy,
                e.calendar,
                e.priority,
                e.elapsed_seconds,
                e.previous_policy,
                o.queue,
                o.customer,
                o.organization,
            )
            for o in outcomes
            for e in o.ledger
        ]
        async with self._pool.acquire() as conn, conn.transaction():
            breaches = await self._insert(conn, _RECORD_BREACHES, breach_rows)
            completions = await self._insert(conn, _RECORD_COMPLETIONS, completion_rows)
            ledger = await self._append(conn, ledger_rows)
            outbox = [] if escalations is None else await self._escalate(conn, escalations)
            if updates is not None and updates.rows:
                outbox += await self._owe_updates(conn, updates)
            if watermark is not None:
                await conn.execute(self._sql(_SAVE_WATERMARK), self._source, watermark)
        return NewlyRecorded(
            [RecordedBreach(*row) for row in breaches],
            [RecordedCompletion(*row) for row in completions],
            [QueuedMessage(*row) for row in outbox],
            ledger,
        )

    @translates
    async def ledger(self, ticket_id: str) -> list[LedgerEntry]:
        """The ticket's recorded ledger, in the order things happened."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                self._sql(_TICKET_LEDGER), self._source, ticket_id, _KINDS, _CLOCKS
            )
        return [
            LedgerEntry(
                Clock(row["clock"]),
                row["window_key"],
                LedgerKind(row["kind"]),
                row["at"],
                row["policy"],
                row["calendar"],
                row["priority"],
                row["elapsed_seconds"],
                row["previous_policy"],
            )
            for row in rows
        ]

    async def _append(self, conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> int:
        """Appends ledger rows (in ``conn``'s transaction): copied into a staging table
        dropped with the transaction, then inserted from it at once (without the privilege to
        create one, as column arrays); returns how many were new."""
        if not rows:
            return 0
        status: str
        try:
            async with conn.transaction():  # a savepoint: a refusal leaves the recording's
                await conn.execute(_LEDGER_INCOMING)
        except asyncpg.InsufficientPrivilegeError:  # no TEMPORARY privilege: column arrays
            columns = [list(column) for column in zip(*rows, strict=True)]
            sql = self._sql(_RECORD_LEDGER_COLUMNS)
            status = await conn.execute(sql, self._source, *columns)
        else:
            await conn.copy_records_to_table(
                "ledger_incoming", records=rows, columns=_LEDGER_COLUMNS, schema_name="pg_temp"
            )
            status = await conn.execute(self._sql(_RECORD_LEDGER), self._source)
        return int(status.split()[-1])

    async def _owe_updates(
        self, conn: asyncpg.Connection, updates: OwedUpdates
    ) -> list[asyncpg.Record]:
        rows = updates.rows
        recorded: list[asyncpg.Record] = await conn.fetch(
            self._sql(_RECORD_UPDATES),
            self._source,
            [r.idempotency_key for r in rows],
            [r.ticket_id for r in rows],
            [r.window_start for r in rows],
            [r.language for r in rows],
            [r.body for r in rows],
            [r.owed_at for r in rows],
            updates.max_per_day,
            updates.channel,
            [r.queue for r in rows],
            [r.priority for r in rows],
            [r.policy for r in rows],
            [r.customer for r in rows],
            [r.organization for r in rows],
        )
        return recorded

    async def _escalate(
        self, conn: asyncpg.Connection, state: EscalationState
    ) -> list[asyncpg.Record]:
        queued = await self._changes(conn, state)
        if state.summary is not None:
            queued += await self._summarize(conn, state)
        return queued

    async def _summarize(
        self, conn: asyncpg.Connection, state: EscalationState
    ) -> list[asyncpg.Record]:
        """Queues one summary per level and channel of the backlog escalations still active
        (recorded by this transaction or by an earlier first start that crashed)."""
        assert state.summary is not None
        counts = [
            {**row, "by_clock": json.loads(row["by_clock"] or "{}")}
            for row in await conn.fetch(self._sql(_BACKLOG_COUNTS), self._source)
        ]
        alerts = backlog_alerts(state.summary, counts)
        if not alerts:
            return []
        queued: list[asyncpg.Record] = await conn.fetch(
            self._sql(_QUEUE_SUMMARIES),
            [key for key, _, _ in alerts],
            ["trigger"] * len(alerts),
            [channel for _, channel, _ in alerts],
            [json.dumps(alert) for _, _, alert in alerts],
        )
        return queued

    async def _changes(
        self, conn: asyncpg.Connection, state: EscalationState
    ) -> list[asyncpg.Record]:
        if not state.tickets:
            return []
        keys = [row.dedup_key for row in state.active]
        resolved: list[asyncpg.Record] = await conn.fetch(
            self._sql(_RESOLVE_ESCALATIONS), self._source, state.tickets, keys
        )
        if not state.active:
            return resolved
        triggered: list[asyncpg.Record] = await conn.fetch(
            self._sql(_TRIGGER_ESCALATIONS),
            self._source,
            keys,
            [row.ticket_id for row in state.active],
            [row.clock for row in state.active],
            [row.level for row in state.active],
            [",".join(row.channels) for row in state.active],
            [json.dumps(row.alert) for row in state.active],
            state.backlog,
        )
        return resolved + triggered

    async def _insert(
        self, conn: asyncpg.Connection, template: str, rows: list[tuple[Any, ...]]
    ) -> list[asyncpg.Record]:
        """Inserts rows column-wise through unnest; returns those that were new."""
        if not rows:
            return []
        columns = [list(column) for column in zip(*rows, strict=True)]
        inserted: list[asyncpg.Record] = await conn.fetch(
            self._sql(template), self._source, *columns
        )
        return inserted

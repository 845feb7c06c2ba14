"""The daemon's own state in PostgreSQL: migrations, watermarks, breaches and completions."""

from __future__ import annotations

import json
import re
from datetime import datetime
from importlib import resources
from typing import Any

import asyncpg

from sla_monitor.records import (
    EscalationState,
    NewlyRecorded,
    OwedUpdates,
    QueuedMessage,
    RecordedBreach,
    RecordedCompletion,
    TicketOutcomes,
)

# An arbitrary constant: one migrator at a time across every daemon sharing the database.
_MIGRATION_LOCK = 7_362_118_201
_MIGRATION_FILE = re.compile(r"^(\d{4})_(\w+)\.sql$")

_CREATE_VERSIONS = """
CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
    version    integer PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""

_LOAD_WATERMARK = "SELECT changed_at FROM {schema}.watermarks WHERE source = $1"

_SAVE_WATERMARK = """
INSERT INTO {schema}.watermarks (source, changed_at) VALUES ($1, $2)
ON CONFLICT (source) DO UPDATE SET changed_at = EXCLUDED.changed_at, saved_at = now()
"""

_RECORD_BREACHES = """
INSERT INTO {schema}.breaches (source, ticket_id, clock, window_key, breached_at, priority, queue)
SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[],
                         $7::text[])
ON CONFLICT DO NOTHING
RETURNING ticket_id, clock, window_key, priority, queue
"""

_RECORD_COMPLETIONS = """
INSERT INTO {schema}.completions
    (source, ticket_id, clock, window_key, stopped_at, met, elapsed_seconds, priority, queue)
SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::boolean[],
                         $7::float8[], $8::text[], $9::text[])
ON CONFLICT DO NOTHING
RETURNING ticket_id, clock, window_key, met, elapsed_seconds, priority, queue
"""


# Driven from the tickets (a nested loop over the active-escalations index) and with the
# still-active keys hashed: `ticket_id = ANY($2) AND dedup_key <> ALL($3)` compared every row
# with both arrays, and a plan cached while the table was empty scanned all of it, which made
# a first sync of a large backlog quadratic (minutes per chunk at 140 k escalations).
_RESOLVE_ESCALATIONS = """
WITH resolved AS (
    UPDATE {schema}.escalations e SET resolved_at = now()
    FROM unnest($2::text[]) AS t (ticket_id)
    WHERE e.source = $1 AND e.ticket_id = t.ticket_id AND e.resolved_at IS NULL
      AND e.dedup_key NOT IN (SELECT unnest($3::text[]))
    RETURNING e.dedup_key, e.channels, e.alert
)
INSERT INTO {schema}.outbox (dedup_key, action, channel, payload)
SELECT dedup_key, 'resolve', unnest(channels), alert FROM resolved
ON CONFLICT DO NOTHING
RETURNING dedup_key, action, channel, payload->'labels'->>'level' AS level
"""

_TRIGGER_ESCALATIONS = """
WITH inserted AS (
    INSERT INTO {schema}.escalations (dedup_key, source, ticket_id, clock, level, channels, alert)
    SELECT key, $1, ticket, clock, level, string_to_array(channels, ','), alert
    FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::jsonb[])
        AS wanted (key, ticket, clock, level, channels, alert)
    ON CONFLICT (dedup_key) DO NOTHING
    RETURNING dedup_key, channels, alert
)
INSERT INTO {schema}.outbox (dedup_key, action, channel, payload)
SELECT dedup_key, 'trigger', unnest(channels), alert FROM inserted
ON CONFLICT DO NOTHING
RETURNING dedup_key, action, channel, payload->'labels'->>'level' AS level
"""


_ESCALATED_TICKETS = """
SELECT DISTINCT ticket_id FROM {schema}.escalations WHERE source = $1 AND resolved_at IS NULL
"""

_RECORD_UPDATES = """
WITH wanted AS (
    SELECT * FROM unnest($2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::text[],
                         $7::timestamptz[])
        AS w (key, ticket, window_start, language, body, owed_at)
), allowed AS (
    -- The cap: no more than $8 updates per ticket in the 24 hours before this one.
    SELECT w.* FROM wanted w
    WHERE (SELECT count(*) FROM {schema}.customer_updates u
           WHERE u.source = $1 AND u.ticket_id = w.ticket
             AND u.owed_at > w.owed_at - interval '24 hours') < $8
), inserted AS (
    INSERT INTO {schema}.customer_updates
        (idempotency_key, source, ticket_id, window_start, language, body, owed_at)
    SELECT key, $1, ticket, window_start, language, body, owed_at FROM allowed
    ON CONFLICT DO NOTHING
    RETURNING idempotency_key, ticket_id, body, window_start
)
INSERT INTO {schema}.outbox (dedup_key, action, channel, payload)
SELECT idempotency_key, 'update', $9,
       jsonb_build_object('dedup_key', idempotency_key, 'ticket_id', ticket_id, 'body', body,
                          'window_start', window_start)
FROM inserted
ON CONFLICT DO NOTHING
RETURNING dedup_key, action, channel, NULL::text AS level
"""


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
    """The daemon's schema. ``schema`` is validated by configuration to a plain identifier."""

    def __init__(self, pool: asyncpg.Pool, schema: str, source: str) -> None:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", schema):
            raise ValueError(f"invalid schema name {schema!r}")
        self._pool = pool
        self._schema = schema
        self._source = source

    def _sql(self, template: str) -> str:
        return template.replace("{schema}", self._schema)

    async def migrate(self) -> list[int]:
        """Applies pending migrations in order, under an advisory lock; returns those applied."""
        applied: list[int] = []
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self._schema}"')
            await conn.execute(self._sql(_CREATE_VERSIONS))
            done = {
                row["version"]
                for row in await conn.fetch(
                    self._sql("SELECT version FROM {schema}.schema_migrations")
                )
            }
            for version, name, sql in _migrations():
                if version in done:
                    continue
                await conn.execute(self._sql(sql))
                await conn.execute(
                    self._sql(
                        "INSERT INTO {schema}.schema_migrations (version, name) VALUES ($1, $2)"
                    ),
                    version,
                    name,
                )
                applied.append(version)
        return applied

    async def load_watermark(self) -> datetime | None:
        """The newest change time already processed, or None on a first start."""
        async with self._pool.acquire() as conn:
            value: datetime | None = await conn.fetchval(self._sql(_LOAD_WATERMARK), self._source)
        return value

    async def escalated_tickets(self) -> list[str]:
        """Tickets with an escalation still active (not resolved) for this source."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(self._sql(_ESCALATED_TICKETS), self._source)
        return [row["ticket_id"] for row in rows]

    async def record(
        self,
        outcomes: list[TicketOutcomes],
        watermark: datetime | None,
        escalations: EscalationState | None = None,
        updates: OwedUpdates | None = None,
    ) -> NewlyRecorded:
        """Records breaches, completions, escalations and owed updates (with their outbox
        rows) and moves the watermark, in one transaction."""
        breach_rows = [
            (o.ticket_id, b.clock.value, b.key, b.breached_at, o.priority, o.queue)
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
            )
            for o in outcomes
            for c in o.completions
        ]
        async with self._pool.acquire() as conn, conn.transaction():
            breaches = await self._insert(conn, _RECORD_BREACHES, breach_rows)
            completions = await self._insert(conn, _RECORD_COMPLETIONS, completion_rows)
            outbox = [] if escalations is None else await self._escalate(conn, escalations)
            if updates is not None and updates.rows:
                outbox += await self._owe_updates(conn, updates)
            if watermark is not None:
                await conn.execute(self._sql(_SAVE_WATERMARK), self._source, watermark)
        return NewlyRecorded(
            [RecordedBreach(*row) for row in breaches],
            [RecordedCompletion(*row) for row in completions],
            [QueuedMessage(*row) for row in outbox],
        )

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
        )
        return recorded

    async def _escalate(
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

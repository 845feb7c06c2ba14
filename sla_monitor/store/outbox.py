"""The outbox table, as the sender sees it: claims, marks, and the gauges' figures.

Its SQL lives in outbox.sql beside this module. Every method (and a claim, from its start to
its commit) raises DatabaseUnavailable (sla_monitor.errors) when the database is away or a
query fails, never the driver's own exceptions.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from sla_monitor.errors import translated, translates
from sla_monitor.sql import load_queries

# Asked in a claim's transaction: does this replica lead now (sla_monitor.leadership)?
Fence = Callable[[asyncpg.Connection], Awaitable[bool]]

_QUERIES = load_queries("sla_monitor.store", "outbox.sql")
# Which rows a claim considers: any channel's, one channel's, one channel's probe, or those of
# channels no longer configured (see outbox.sql).
ClaimKind = Literal["claim_any", "claim_channel", "claim_probe", "claim_orphan"]
_CLAIMS: dict[str, str] = {
    kind: _QUERIES[kind] for kind in ("claim_any", "claim_channel", "claim_probe", "claim_orphan")
}
_DELIVERED = _QUERIES["delivered"]
_RETRY = _QUERIES["retry"]
_DEFER = _QUERIES["defer"]
_CANCEL = _QUERIES["cancel"]
_RECOVERED = _QUERIES["recovered"]
_RETRY_PARKED = _QUERIES["retry_parked"]
_BACKLOG = _QUERIES["backlog"]
_NEXT_DUE = _QUERIES["next_due"]
_ACTIVE_FOR = _QUERIES["active_for"]
_DIGEST = _QUERIES["digest"]
_DIGESTED = _QUERIES["digested"]


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    dedup_key: str
    action: str  # trigger, resolve or update
    channel: str
    payload: dict[str, Any]
    attempts: int  # before this one


class Claimed:
    """A claimed row inside its still open transaction: mark it once, then the claim ends."""

    def __init__(self, conn: asyncpg.Connection, store: OutboxStore, row: OutboxRow) -> None:
        self._conn = conn
        self._store = store
        self.row = row

    async def delivered(self) -> None:
        with translated():
            await self._conn.execute(self._store.sql(_DELIVERED), self.row.id)

    async def retry(self, error: str, delay: float, park: bool) -> None:
        """Counts a failed attempt and makes the row due in ``delay`` seconds; ``park`` marks
        a refusal (it waits for retry_parked or its delay, never probed before)."""
        with translated():
            await self._conn.execute(self._store.sql(_RETRY), self.row.id, error, delay, park)

    async def defer(self, delay: float) -> None:
        """Looks at the row again in ``delay`` seconds, not counting an attempt."""
        with translated():
            await self._conn.execute(self._store.sql(_DEFER), self.row.id, delay)

    async def digest(self, key: str, stub: dict[str, Any], due_at: datetime) -> None:
        """Folds the row into the digest ``key`` (queued, due at ``due_at``, if not yet)."""
        with translated():
            await self._conn.execute(
                self._store.sql(_DIGEST), self.row.id, key, json.dumps(stub), due_at
            )

    async def digested(self) -> list[dict[str, Any]]:
        """The alerts folded into this row, a digest (oldest first)."""
        with translated():
            rows = await self._conn.fetch(self._store.sql(_DIGESTED), self.row.dedup_key)
        return [json.loads(row["payload"]) for row in rows]

    async def cancel(self, reason: str) -> None:
        """Ends the row unsent, with ``reason`` as its last error."""
        with translated():
            await self._conn.execute(self._store.sql(_CANCEL), self.row.id, reason)


class OutboxStore:
    """The outbox of the daemon's schema (validated by the StateStore's rules)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str,
        fence: Fence | None = None,
    ) -> None:
        """``fence(conn)``: asked in a claim's transaction, once its row is locked; False (this
        replica does not hold the leader's lock now) gives the row up unclaimed."""
        self._pool = pool
        self._schema = schema
        self._fence = fence

    def sql(self, template: str) -> str:
        return template.replace("{schema}", self._schema)

    @contextlib.asynccontextmanager
    async def claim(self, kind: ClaimKind, *args: Any) -> AsyncIterator[Claimed | None]:
        """Claims one row (None when there is none) in a transaction that commits when the
        block ends and rolls back if it raises: a row not marked stays pending."""
        with translated():
            async with self._pool.acquire() as conn, conn.transaction():
                record = await conn.fetchrow(self.sql(_CLAIMS[kind]), *args)
                if record is None or (self._fence is not None and not await self._fence(conn)):
                    yield None
                    return
                yield Claimed(
                    conn,
                    self,
                    OutboxRow(
                        id=record["id"],
                        dedup_key=record["dedup_key"],
                        action=record["action"],
                        channel=record["channel"],
                        payload=json.loads(record["payload"]),
                        attempts=record["attempts"],
                    ),
                )

    @translates
    async def retry_parked(self, channel: str | None) -> int:
        """Makes parked rows (of ``channel``, or all) due now; returns how many."""
        async with self._pool.acquire() as conn:
            status: str = await conn.execute(self.sql(_RETRY_PARKED), channel)
        return int(status.split()[-1])

    @translates
    async def recovered(self, channel: str) -> None:
        """The channel answers again: its backlog (not its parked rows) is due now."""
        async with self._pool.acquire() as conn:
            await conn.execute(self.sql(_RECOVERED), channel)

    @translates
    async def backlog(self) -> tuple[int, float]:
        """Undelivered rows, and the age in seconds of the oldest (0 when none)."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(self.sql(_BACKLOG))
        return int(row["pending"]), float(row["oldest"] or 0)

    @translates
    async def next_due(self, channel: str) -> float | None:
        """Seconds until the channel's next row not yet due is due; None if it has none."""
        async with self._pool.acquire() as conn:
            due = await conn.fetchval(self.sql(_NEXT_DUE), channel)
        return None if due is None else float(due)

    @translates
    async def active_alerts(self, channel: str) -> list[dict[str, Any]]:
        """The alerts of the escalations still active on ``channel``, oldest first."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(self.sql(_ACTIVE_FOR), channel)
        return [json.loads(row["alert"]) for row in rows]

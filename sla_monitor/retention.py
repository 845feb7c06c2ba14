"""Retention: deletes the daemon's own rows older than [retention] says, in the background.

Each table is purged in batches of ``batch_size`` rows, one DELETE (its own short
transaction) per batch with a pause between batches, so the poll loop and the senders, which
share the pool, never wait behind a long delete; a table is done when a batch deletes fewer
rows than asked. A purge that fails (the database away) is logged and tried again at the next
interval: nothing depends on rows being gone.
"""

from __future__ import annotations

import asyncio

import structlog

from sla_monitor.database import Pool
from sla_monitor.errors import DatabaseUnavailable, translates
from sla_monitor.metrics import Metrics
from sla_monitor.schema import RetentionSettings
from sla_monitor.sql import load_queries

log = structlog.get_logger("sla_monitor.retention")

_QUERIES = load_queries("sla_monitor.store", "retention.sql")
# Table -> the [retention] age that applies to it (breaches and completions share one).
TABLES = {
    "outbox": "delivered_outbox",
    "breaches": "breaches",
    "completions": "breaches",
    "customer_updates": "customer_updates",
    "escalations": "resolved_escalations",
    "ledger": "ledger",
}
_DELETES = {table: _QUERIES[table] for table in TABLES}


class Retention:
    def __init__(
        self, pool: Pool, schema: str, settings: RetentionSettings, metrics: Metrics
    ) -> None:
        self._pool = pool
        self._schema = schema
        self.settings = settings
        self.metrics = metrics
        for table in TABLES:  # every series exists from the start, at 0
            metrics.rows_purged.labels(table)

    @translates
    async def _delete_batch(self, table: str) -> int:
        age = getattr(self.settings, TABLES[table])
        sql = _DELETES[table].replace("{schema}", self._schema)
        async with self._pool.acquire() as conn:
            status: str = await conn.execute(sql, age, self.settings.batch_size)
        return int(status.split()[-1])

    async def purge_table(self, table: str) -> int:
        """Deletes the table's rows past their age, batch by batch; returns how many."""
        total = 0
        while True:
            deleted = await self._delete_batch(table)
            total += deleted
            self.metrics.rows_purged.labels(table).inc(deleted)
            if deleted < self.settings.batch_size:
                return total
            await asyncio.sleep(self.settings.pause)  # others' transactions go first

    async def purge(self) -> dict[str, int]:
        """One purge of every table; returns the rows deleted per table."""
        purged = {table: await self.purge_table(table) for table in TABLES}
        if any(purged.values()):
            log.info("purged", **purged)
        return purged

    async def run(self) -> None:
        """Purges every ``interval`` (the first at once) until cancelled: a supervised task,
        which never ends by itself."""
        while True:
            try:
                await self.purge()
            except DatabaseUnavailable as error:
                log.error("purge_failed", error=str(error))
            await asyncio.sleep(self.settings.interval)

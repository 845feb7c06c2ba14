"""The report's reads of the daemon's own schema: typed rows, nothing else (the arithmetic is
sla_monitor.report's). Its SQL lives in report.sql beside this module.

ChurnWatch is the daemon's periodic count of the customers at risk, for the bounded gauge
sla_monitor_customers_at_risk{reason}: a count per reason, never a label per customer."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog

from sla_monitor.errors import DatabaseUnavailable, translates
from sla_monitor.metrics import Metrics
from sla_monitor.report import (
    BreachRow,
    ChurnRules,
    CompletionRow,
    UpdateRow,
    at_risk_counts,
    at_risk_json,
    churn_risk,
)
from sla_monitor.sql import load_queries

_QUERIES = load_queries("sla_monitor.store", "report.sql")
_COMPLETIONS = _QUERIES["completions"]
_BREACHES = _QUERIES["breaches"]
_UPDATES = _QUERIES["updates"]

log = structlog.get_logger("sla_monitor.churn")


class ReportStore:
    """One source's breaches and completions in a period. Raises DatabaseUnavailable
    (sla_monitor.errors) when the database is away or a query fails."""

    def __init__(self, pool: asyncpg.Pool, schema: str, source: str) -> None:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", schema):
            raise ValueError(f"invalid schema name {schema!r}")
        self._pool = pool
        self._schema = schema
        self._source = source

    @translates
    async def completions(self, start: datetime, end: datetime) -> list[CompletionRow]:
        """Completions whose clock stopped in [start, end)."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                _COMPLETIONS.replace("{schema}", self._schema), self._source, start, end
            )
        return [CompletionRow._make(row) for row in rows]

    @translates
    async def breaches(self, start: datetime, end: datetime) -> list[BreachRow]:
        """Breaches whose clock crossed its target in [start, end)."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                _BREACHES.replace("{schema}", self._schema), self._source, start, end
            )
        return [BreachRow._make(row) for row in rows]

    @translates
    async def updates(self, start: datetime, end: datetime) -> list[UpdateRow]:
        """Progress updates owed in [start, end), each with whether it was sent."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                _UPDATES.replace("{schema}", self._schema), self._source, start, end
            )
        return [UpdateRow(*row) for row in rows]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ChurnWatch:
    """Recounts the customers and organizations at risk every ``interval`` seconds."""

    def __init__(
        self,
        store: ReportStore,
        rules: ChurnRules,
        metrics: Metrics,
        interval: float,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.store = store
        self.rules = rules
        self.metrics = metrics
        self.interval = interval
        self.clock = clock
        # The last count (None before the first), for GET /api/v1/customers/at-risk.
        self.latest: dict[str, Any] | None = None

    async def count(self) -> dict[str, int]:
        """Reads the window ending now and sets the gauge; returns the counts per reason."""
        now = self.clock()
        since = now - timedelta(seconds=self.rules.window)
        completions = await self.store.completions(since, now)
        breaches = await self.store.breaches(since, now)
        found = churn_risk(completions, breaches, self.rules, now)
        counts = at_risk_counts(found)
        self.latest = {
            "counted_at": now.isoformat(),
            "since": since.isoformat(),
            "counts": counts,
            "at_risk": at_risk_json(found),
        }
        for reason, count in counts.items():
            self.metrics.customers_at_risk.labels(reason).set(count)
        return counts

    async def run(self) -> None:
        """Counts every ``interval`` (the first at once) until cancelled: a supervised task,
        which never ends by itself; a failed count leaves the gauge as it was."""
        while True:
            try:
                await self.count()
            except DatabaseUnavailable as error:
                log.error("churn_count_failed", error=str(error))
            await asyncio.sleep(self.interval)

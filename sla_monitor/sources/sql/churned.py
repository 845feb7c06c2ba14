"""The customers who left, as the helpdesk knows them: ``[churn] churned_customers_query``,
run by `sla-monitor report` for its churn rate (sla_monitor.report.churn_rate)."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from sla_monitor.errors import translates


@translates
async def churned_customers(
    pool: asyncpg.Pool, query: str, start: datetime, end: datetime
) -> list[str]:
    """The first column of ``query`` run with $1 = ``start`` and $2 = ``end``, as text, NULLs
    left out. Raises DatabaseUnavailable when it fails (a wrong query included)."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(query, start, end)
    return [str(row[0]) for row in rows if row[0] is not None]

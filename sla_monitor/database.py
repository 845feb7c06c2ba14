"""The daemon's connection pools: the one place that opens them with the driver's options."""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg

# The pool type the parts that query are handed (the store, the source, the outbox).
Pool: TypeAlias = asyncpg.Pool


async def _plan_each_execution(conn: asyncpg.Connection) -> None:
    """Plans are made for each execution's arguments: asyncpg prepares every statement, and a
    generic plan PostgreSQL caches while the daemon's tables are still empty (a first sync)
    keeps scanning them whole once they hold a backlog, until autovacuum analyses them. Set
    with SET rather than as a startup parameter, which PgBouncer refuses by default."""
    await conn.execute("SET plan_cache_mode = force_custom_plan")


POOL_OPTIONS: dict[str, Any] = {
    "max_size": 4,  # the poller's share; create_pool adds the senders' (delivery_connections)
    "command_timeout": 60,
    "setup": _plan_each_execution,  # on every acquire: the pool RESETs ALL on release
}


async def create_pool(dsn: str, extra_connections: int = 0) -> Pool:
    """A pool of POOL_OPTIONS' size plus ``extra_connections``. It opens without connecting
    (min_size=0), so the daemon starts, reports not ready and retries while the database is
    away."""
    size = POOL_OPTIONS["max_size"] + extra_connections
    pool: Pool = await asyncpg.create_pool(dsn, **{**POOL_OPTIONS, "min_size": 0, "max_size": size})
    return pool

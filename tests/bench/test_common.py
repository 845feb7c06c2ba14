"""bench/common.py: a benchmark given a helpdesk works on a copy and leaves it as it was."""

from __future__ import annotations

import sys
from pathlib import Path

import asyncpg
import pytest

from sla_monitor.sources.sql import REFERENCE_SCHEMA

BENCH = Path(__file__).parents[2] / "bench"


async def test_a_given_helpdesk_is_copied_and_the_copy_dropped(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    from common import helpdesk

    conn = await asyncpg.connect(database_dsn)
    await conn.execute(REFERENCE_SCHEMA)
    await conn.close()
    async with helpdesk(database_dsn, None) as copy:
        assert copy != database_dsn
        conn = await asyncpg.connect(copy)
        await conn.execute("INSERT INTO helpdesk.tickets (subject) VALUES ('probe')")
        await conn.execute("CREATE SCHEMA sla_monitor")
        name = await conn.fetchval("SELECT current_database()")
        await conn.close()
    conn = await asyncpg.connect(database_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM helpdesk.tickets") == 0
        assert (
            await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = 'sla_monitor'")
            == 0
        )
        assert await conn.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name) == 0
    finally:
        await conn.close()
    sys.modules.pop("common", None)

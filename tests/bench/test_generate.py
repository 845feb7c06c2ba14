"""The benchmark helpdesk generator: the sizes asked for, seeded, nothing stamped in the future."""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import asyncpg

from sla_monitor.config import Settings


def _generator() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "bench" / "generate.py"
    spec = importlib.util.spec_from_file_location("bench_generate", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


async def test_it_loads_the_sizes_asked_for_with_no_time_after_now(database_dsn: str) -> None:
    figures = await _generator().generate(database_dsn, 2000, 200, seed=7, now=NOW)
    conn = await asyncpg.connect(database_dsn)
    try:
        resolved = Settings().statuses.resolved
        open_count = await conn.fetchval(
            "SELECT count(*) FROM helpdesk.tickets WHERE status <> ALL($1::text[])", resolved
        )
        assert (figures["tickets"], open_count) == (2000, 200)
        assert (
            await conn.fetchval("SELECT count(*) FROM helpdesk.ticket_events") == figures["events"]
        )
        latest = await conn.fetchval(
            "SELECT max(t) FROM (SELECT max(updated_at) AS t FROM helpdesk.tickets"
            " UNION ALL SELECT max(created_at) FROM helpdesk.ticket_events) s"
        )
        assert latest <= NOW
        orphans = await conn.fetchval(
            "SELECT count(*) FROM helpdesk.ticket_events e"
            " WHERE NOT EXISTS (SELECT 1 FROM helpdesk.tickets t WHERE t.id = e.ticket_id)"
        )
        assert orphans == 0
        # The indexes dropped for the load are back.
        indexes = {
            row["indexname"]
            for row in await conn.fetch(
                "SELECT indexname FROM pg_indexes WHERE schemaname = 'helpdesk'"
            )
        }
        assert {"tickets_updated_at_id", "tickets_status", "ticket_events_ticket"} <= indexes
    finally:
        await conn.close()


def test_the_same_seed_gives_the_same_rows() -> None:
    generator = _generator()
    first = list(generator.chunks(500, 50, 3, NOW))
    assert first == list(generator.chunks(500, 50, 3, NOW))
    assert first != list(generator.chunks(500, 50, 4, NOW))

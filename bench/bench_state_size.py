"""PostgreSQL sizing: the daemon's own schema and the helpdesk's working set after a first sync.

    python bench/bench_state_size.py [--total N] [--open M] [--database-dsn DSN]

Loads a generated helpdesk (as bench_poll.py does, dropped afterwards), runs the daemon's first
sync with escalations on (one level when breached, one webhook channel: recorded, not sent),
then prints per table of the daemon's schema its rows and total size (with indexes and TOAST),
the helpdesk's tables and indexes, and the shared-buffer hits and reads of three cycles with
--changes changed tickets each (bench_poll's mix): when the hot part of the helpdesk does not
fit in shared_buffers, every cycle reads from the kernel's cache or the disk.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import asyncpg
from bench_poll import change
from common import helpdesk

from sla_monitor.app import build_daemon
from sla_monitor.config import Settings
from sla_monitor.daemon_options import Hooks
from sla_monitor.database import POOL_OPTIONS
from sla_monitor.logs import configure_logging

MIB = 1024 * 1024
# PostgreSQL 15 publishes a backend's I/O counters when it has been idle for up to 10 s.
STATS_FLUSH = 11.0

SIZES = """
SELECT c.relname AS name, c.reltuples::bigint AS rows,
       pg_total_relation_size(c.oid) AS total, pg_relation_size(c.oid) AS heap
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relkind IN ('r', 'i')
ORDER BY pg_total_relation_size(c.oid) DESC
"""

BUFFERS = """
SELECT blks_hit, blks_read FROM pg_stat_database WHERE datname = current_database()
"""


def settings_for(dsn: str) -> Settings:
    return Settings(
        database={"dsn": dsn},
        source={"watermark_lag": 1.0},
        escalation={
            "enabled": True,
            "channels": {"webhook": {"url": "http://127.0.0.1:9/unused", "secret": "unused"}},
            "levels": [{"name": "oncall", "when": "breached", "channels": ["webhook"]}],
            "backlog": "record",
        },
    )


async def table_sizes(conn: asyncpg.Connection, schema: str) -> int:
    """Prints the schema's tables and indexes; returns the tables' total (indexes included)."""
    names = await tables(conn, schema)
    total = 0
    print(f"\n{schema}: relation, rows (estimate), size (a table's with its indexes and TOAST)")
    for row in await conn.fetch(SIZES, schema):
        print(f"  {row['name']:<34} {row['rows']:>12,} {row['total'] / MIB:>10,.1f} MiB")
        total += row["total"] if row["name"] in names else 0
    print(f"  {'in all':<34} {'':>12} {total / MIB:>10,.1f} MiB")
    return total


async def tables(conn: asyncpg.Connection, schema: str) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", schema)
    return {row["tablename"] for row in rows}


async def main(args: argparse.Namespace) -> None:
    configure_logging("warning")
    sizes = ["--total", str(args.total), "--open", str(args.open), "--seed", str(args.seed)]
    async with helpdesk(args.database_dsn, sizes) as dsn:
        settings = settings_for(dsn)
        schema = settings.database.schema_name
        conn = await asyncpg.connect(dsn)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        pool = await asyncpg.create_pool(dsn, min_size=1, **POOL_OPTIONS)
        try:
            daemon = build_daemon(settings, pool, pool, Hooks(freeze_gc=True))
            await daemon.store.migrate()
            began = time.perf_counter()
            await daemon.poll_once()
            tracked = len(daemon.tracker)
            print(f"first sync: {tracked:,} open tickets in {time.perf_counter() - began:.1f} s")
            await conn.execute("VACUUM ANALYZE")
            state = await table_sizes(conn, schema)
            print(f"  per open ticket: {state / max(tracked, 1):,.0f} bytes")
            await table_sizes(conn, "helpdesk")
            shared = await conn.fetchval("SHOW shared_buffers")
            ids = await conn.fetch(
                "SELECT id FROM helpdesk.tickets WHERE status <> ALL($1::text[]) "
                "ORDER BY random() LIMIT $2",
                list(settings.statuses.resolved),
                3 * args.changes,
            )
            for round_ in range(3):
                await asyncio.sleep(settings.source.watermark_lag + 0.2)
                await daemon.poll_once()  # the previous round's lag re-reads
                await asyncio.sleep(STATS_FLUSH)
                before = await conn.fetchrow(BUFFERS)
                chosen = [row["id"] for row in ids[round_ * args.changes :][: args.changes]]
                await change(conn, chosen, judged=True)
                began = time.perf_counter()
                await daemon.poll_once()
                took = time.perf_counter() - began
                await asyncio.sleep(STATS_FLUSH)
                after = await conn.fetchrow(BUFFERS)
                print(
                    f"cycle with {len(chosen):,} changed tickets: {took * 1000:.0f} ms; "
                    f"shared_buffers ({shared}): "
                    f"{after['blks_hit'] - before['blks_hit']:,} blocks hit, "
                    f"{after['blks_read'] - before['blks_read']:,} read (the change included)"
                )
        finally:
            await pool.close()
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total", type=int, default=1_000_000)
    parser.add_argument("--open", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--database-dsn", help="a helpdesk already loaded by generate.py")
    asyncio.run(main(parser.parse_args()))

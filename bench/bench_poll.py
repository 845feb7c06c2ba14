"""Poll-cycle figures at scale on the reference schema, against the issue's targets.

    python bench/bench_poll.py [--total N] [--open M] [--changes C] [--database-dsn DSN]

Without --database-dsn it creates a database through $SLA_MONITOR_BENCH_DSN (an admin DSN;
else an embedded PostgreSQL), loads it with bench/generate.py (in a child process, so the
loader's memory is not counted here) and drops it at the end. With --database-dsn it uses a
helpdesk generate.py already loaded (and drops only the daemon's own schema, before and after).

Prints: the raw `COPY (same query) TO STDOUT` of the open tickets and their events, the source
read alone, the daemon's full sync (read, judge, record) and its ratio to the raw COPY, RSS per
tracked open ticket, an idle cycle, an incremental cycle with C changed tickets (a third each
of customer messages, staff replies and tickets put on hold) and the /metrics scrape over HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import asyncpg
from common import helpdesk

from sla_monitor.app import build_daemon
from sla_monitor.config import Settings
from sla_monitor.daemon import Daemon
from sla_monitor.daemon_options import Hooks
from sla_monitor.database import POOL_OPTIONS
from sla_monitor.http import start_http
from sla_monitor.logs import configure_logging

MIB = 1024 * 1024


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def verdict(ok: bool) -> str:
    return "target met" if ok else "TARGET MISSED"


@contextmanager
def profiling(enabled: bool, what: str) -> Iterator[None]:
    """Prints a pyinstrument profile of the block when enabled."""
    if not enabled:
        yield
        return
    from pyinstrument import Profiler

    profiler = Profiler(async_mode="enabled", interval=0.0005)
    profiler.start()
    yield
    profiler.stop()
    print(f"--- profile of the {what} ---")
    print(profiler.output_text(unicode=False, color=False, show_all=False))


async def timed(action: Callable[[], Any]) -> float:
    began = time.perf_counter()
    await action()
    return time.perf_counter() - began


async def raw_copy(conn: asyncpg.Connection, settings: Settings) -> tuple[float, int]:
    """Seconds and bytes of COPY TO STDOUT of what the full sync reads: the open-tickets query
    and the events query over the same tickets (one statement instead of one per batch)."""
    resolved = list(settings.statuses.resolved)
    received = 0

    async def sink(chunk: bytes) -> None:
        nonlocal received
        received += len(chunk)

    events = settings.source.events_query.replace(
        "ANY($1::text[]::bigint[])",
        f"ANY(ARRAY(SELECT ticket_id::bigint FROM ({settings.source.open_tickets_query}) o))",
    )
    began = time.perf_counter()
    await conn.copy_from_query(settings.source.open_tickets_query, resolved, output=sink)
    await conn.copy_from_query(events, resolved, output=sink)
    return time.perf_counter() - began, received


async def change(conn: asyncpg.Connection, ids: list[int]) -> None:
    """A day's mix of changes: a third each of customer messages, staff replies and tickets
    put on hold (pending on the customer), in one transaction."""
    third = len(ids) // 3
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO helpdesk.ticket_events (ticket_id, kind, author) "
            "SELECT unnest($1::bigint[]), 'customer_message', 'customer'",
            ids[:third],
        )
        await conn.execute(
            "INSERT INTO helpdesk.ticket_events (ticket_id, kind, author) "
            "SELECT unnest($1::bigint[]), 'public_reply', 'staff'",
            ids[third : 2 * third],
        )
        await conn.execute(
            "INSERT INTO helpdesk.ticket_events (ticket_id, kind, author, new_value, old_value) "
            "SELECT id, 'status_change', 'staff', 'pending', status FROM helpdesk.tickets "
            "WHERE id = ANY($1::bigint[])",
            ids[2 * third :],
        )
        await conn.execute(
            "UPDATE helpdesk.tickets SET status = 'pending' WHERE id = ANY($1::bigint[])",
            ids[2 * third :],
        )


async def read_only(daemon: Daemon) -> int:
    count = 0
    async for batch in daemon.source.open_tickets():
        count += len(batch.tickets) + len(batch.bad_rows)
    return count


async def main(args: argparse.Namespace) -> None:
    sizes = ["--total", str(args.total), "--open", str(args.open), "--seed", str(args.seed)]
    async with helpdesk(args.database_dsn, sizes) as dsn:
        settings = Settings(database={"dsn": dsn}, source={"watermark_lag": 1.0})
        schema = settings.database.schema_name
        conn = await asyncpg.connect(dsn)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        open_count = await conn.fetchval(
            "SELECT count(*) FROM helpdesk.tickets WHERE status <> ALL($1::text[])",
            list(settings.statuses.resolved),
        )
        total = await conn.fetchval("SELECT count(*) FROM helpdesk.tickets")
        print(f"helpdesk: {total:,} tickets, {open_count:,} open; {os.cpu_count()} cores")
        pool = await asyncpg.create_pool(dsn, min_size=1, **POOL_OPTIONS)
        try:
            await run(conn, pool, settings, args.changes, args.profile)
        finally:
            await pool.close()
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await conn.close()


async def run(
    conn: asyncpg.Connection, pool: asyncpg.Pool, settings: Settings, changes: int, profile: bool
) -> None:
    await raw_copy(conn, settings)  # warms the cache for both sides alike
    raw, size = await raw_copy(conn, settings)
    print(f"raw COPY TO STDOUT (open tickets + their events): {raw:.2f} s, {size / MIB:,.0f} MiB")

    daemon = build_daemon(settings, pool, pool, Hooks(freeze_gc=True))  # as `run` does
    await daemon.store.migrate()
    read = await timed(lambda: read_only(daemon))
    print(f"source read alone (rows to Ticket objects): {read:.2f} s ({read / raw:.1f}x raw COPY)")

    gc.collect()
    base = rss_mib()
    with profiling(profile, "full sync"):
        sync = await timed(daemon.poll_once)
    gc.collect()
    after = rss_mib()
    tracked = len(daemon.tracker)
    print(
        f"full sync (read, judge, record) + first poll: {sync:.2f} s, "
        f"{tracked / sync:,.0f} tickets/s; {sync / raw:.1f}x raw COPY (target <= 1.5x: "
        f"{verdict(sync <= 1.5 * raw)})"
    )
    per_ticket = (after - base) * MIB / max(tracked, 1)
    projected = (after + (1_000_000 - tracked) * per_ticket / MIB) / 1024
    judged = (
        f"{projected:.2f} GiB (target < 1 GiB: {verdict(projected < 1)})"
        if tracked >= 100_000  # below, fixed costs (arenas, caches) swamp the per-ticket part
        else "not projected below 100,000 tracked tickets"
    )
    print(
        f"RSS: {after:,.0f} MiB with {tracked:,} tracked ({base:,.0f} MiB before the sync), "
        f"{per_ticket:,.0f} bytes per tracked open ticket; 1 M open: {judged}"
    )

    idle = [await timed(daemon.poll_once) for _ in range(4)]
    with profiling(profile, "idle cycle"):
        idle.append(await timed(daemon.poll_once))
    print(f"idle cycle (no changes): median {statistics.median(idle) * 1000:.1f} ms")

    ids = await conn.fetch(
        "SELECT id FROM helpdesk.tickets WHERE status <> ALL($1::text[]) ORDER BY random() "
        "LIMIT $2",
        list(settings.statuses.resolved),
        changes * 3,
    )
    cycles = []
    for round_ in range(3):
        await asyncio.sleep(settings.source.watermark_lag + 0.5)  # leave the lag window
        await daemon.poll_once()
        chosen = [row["id"] for row in ids[round_ * changes : (round_ + 1) * changes]]
        await change(conn, chosen)
        with profiling(profile and round_ == 2, "incremental cycle"):
            cycles.append(await timed(daemon.poll_once))
    best = statistics.median(cycles)
    print(
        f"incremental cycle with {changes:,} changed tickets: median {best * 1000:.1f} ms of "
        f"{', '.join(f'{c * 1000:.0f}' for c in cycles)} (target < 50 ms: {verdict(best < 0.05)})"
    )

    runner = await start_http(daemon, "127.0.0.1", 0)
    port = runner.addresses[0][1]
    scrapes = []
    async with aiohttp.ClientSession() as session:
        for _ in range(11):
            began = time.perf_counter()
            async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                body = await response.read()
            scrapes.append(time.perf_counter() - began)
    await runner.cleanup()
    scrape = statistics.median(scrapes)
    print(
        f"/metrics scrape over HTTP: median {scrape * 1000:.1f} ms, {len(body) / 1024:.0f} KiB "
        f"(target < 20 ms: {verdict(scrape < 0.02)})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total", type=int, default=1_000_000)
    parser.add_argument("--open", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--database-dsn", help="a helpdesk already loaded by generate.py")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile the full sync and an incremental cycle (pip install pyinstrument)",
    )
    configure_logging("warning")  # one info line per breach would drown the figures
    asyncio.run(main(parser.parse_args()))

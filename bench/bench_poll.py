"""Poll-cycle figures at scale on the reference schema, against the issue's targets.

    python bench/bench_poll.py [--total N] [--open M] [--changes C] [--database-dsn DSN]

Without --database-dsn it creates a database through $SLA_MONITOR_BENCH_DSN (an admin DSN;
else an embedded PostgreSQL), loads it with bench/generate.py (in a child process) and drops
it at the end. With --database-dsn it works on a copy of that helpdesk (CREATE DATABASE ...
TEMPLATE; no other session may use it meanwhile), dropped at the end: the bursts of changes
and the daemon's schema never reach the database it was given.

Prints, side by side in one run: the raw baseline (COPY TO STDOUT of the open-tickets query,
then of the events query per batch of the source's batch size: the same rows in the same
batches), the source read alone and the daemon's full sync (read, judge, record), each with
its ratio to the raw baseline; an idle cycle; two bursts of C changed tickets at the default
watermark lag and poll interval, polled in real time until the watermark has passed them,
with every poll that read them summed: one the daemon judges (public replies and holds), one
it reads and skips (internal notes); and the /metrics scrape over HTTP. Memory per ticket is
bench_scale.py's: measured from a fresh process, over several sizes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import aiohttp
import asyncpg
from common import helpdesk, raw_batched_read

from sla_monitor.app import build_daemon
from sla_monitor.config import Settings
from sla_monitor.daemon import Daemon
from sla_monitor.daemon_options import Hooks
from sla_monitor.database import POOL_OPTIONS
from sla_monitor.http import start_http
from sla_monitor.logs import configure_logging

MIB = 1024 * 1024


def verdict(ok: bool) -> str:
    return "target met" if ok else "TARGET MISSED"


@contextmanager
def profiling(enabled: bool, what: str) -> Iterator[None]:
    """Prints a profile of the block when enabled: pyinstrument's when it is installed, else
    cProfile's 30 functions with the most own time."""
    if not enabled:
        yield
        return
    try:
        from pyinstrument import Profiler
    except ImportError:
        import cProfile
        import pstats

        profile = cProfile.Profile()
        profile.enable()
        yield
        profile.disable()
        print(f"--- profile of the {what} (cProfile) ---")
        pstats.Stats(profile).sort_stats("tottime").print_stats(30)
        return
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


async def change(conn: asyncpg.Connection, ids: list[int], judged: bool) -> datetime:
    """A burst of changes in one transaction; returns the newest updated_at it left. Judged:
    half public replies, half tickets put on hold (pending on the customer), both move a
    clock. Skipped: internal notes, which move none (the daemon reads them, judges nothing)."""
    half = len(ids) // 2
    async with conn.transaction():
        if not judged:
            await conn.execute(
                "INSERT INTO helpdesk.ticket_events (ticket_id, kind, author) "
                "SELECT unnest($1::bigint[]), 'internal_note', 'staff'",
                ids,
            )
        else:
            await conn.execute(
                "INSERT INTO helpdesk.ticket_events (ticket_id, kind, author) "
                "SELECT unnest($1::bigint[]), 'public_reply', 'staff'",
                ids[:half],
            )
            await conn.execute(
                "INSERT INTO helpdesk.ticket_events (ticket_id, kind, author, new_value, "
                "old_value) SELECT id, 'status_change', 'staff', 'pending', status "
                "FROM helpdesk.tickets WHERE id = ANY($1::bigint[])",
                ids[half:],
            )
            await conn.execute(
                "UPDATE helpdesk.tickets SET status = 'pending' WHERE id = ANY($1::bigint[])",
                ids[half:],
            )
    newest: datetime = await conn.fetchval(
        "SELECT max(updated_at) FROM helpdesk.tickets WHERE id = ANY($1::bigint[])", ids
    )
    return newest


async def burst(daemon: Daemon, conn: asyncpg.Connection, ids: list[int], judged: bool) -> str:
    """The loop time a burst costs at the default lag and interval: the first poll that reads
    it and every poll that re-reads it while the watermark lags behind it, summed."""
    # The tickets whose deadlines come meanwhile are judged between polls, untimed, as the
    # served loop wakes for them: the polls then time the burst, not time passing.
    await daemon.refresh_due()
    newest = await change(conn, ids, judged)
    polls = [await timed(daemon.poll_once)]
    while daemon.watermark is not None and daemon.watermark < newest:
        await asyncio.sleep(daemon.timing.poll_interval)
        await daemon.refresh_due()
        polls.append(await timed(daemon.poll_once))
    total = sum(polls)
    kind = "judged (replies, holds)" if judged else "skipped (internal notes)"
    return (
        f"{len(ids):,} changes {kind}: {total * 1000:.1f} ms in {len(polls)} polls "
        f"({', '.join(f'{p * 1000:.1f}' for p in polls)} ms; every re-read of the lag "
        f"included; target < 50 ms: {verdict(total < 0.05)})"
    )


async def read_only(daemon: Daemon) -> int:
    count = 0
    async for batch in daemon.source.open_tickets():
        count += len(batch.tickets) + len(batch.bad_rows)
    return count


async def main(args: argparse.Namespace) -> None:
    sizes = ["--total", str(args.total), "--open", str(args.open), "--seed", str(args.seed)]
    async with helpdesk(args.database_dsn, sizes) as dsn:
        settings = Settings(database={"dsn": dsn})  # the default lag and interval
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
    await raw_batched_read(conn, settings)  # warms the cache for both sides alike
    raw, size, rows = await raw_batched_read(conn, settings)
    print(
        f"raw COPY TO STDOUT, the same rows in the same batches ({rows:,} open tickets and "
        f"their events, {settings.source.batch_size:,} a batch): {raw:.2f} s, {size / MIB:,.0f} MiB"
    )

    daemon = build_daemon(settings, pool, pool, Hooks(freeze_gc=True))  # as `run` does
    await daemon.store.migrate()
    read = await timed(lambda: read_only(daemon))
    print(f"source read alone (rows to Ticket objects): {read:.2f} s; {read / raw:.1f}x raw")

    with profiling(profile, "full sync"):
        sync = await timed(daemon.poll_once)
    tracked = len(daemon.tracker)
    print(
        f"full sync (read, judge, record) + first poll: {sync:.2f} s, "
        f"{tracked / sync:,.0f} tickets/s; {sync / raw:.1f}x raw (target <= 3x: "
        f"{verdict(sync <= 3 * raw)}); memory: see bench_scale.py (from a fresh process)"
    )

    idle = [await timed(daemon.poll_once) for _ in range(4)]
    with profiling(profile, "idle cycle"):
        idle.append(await timed(daemon.poll_once))
    print(f"idle cycle (no changes): median {statistics.median(idle) * 1000:.1f} ms")

    ids = [
        row["id"]
        for row in await conn.fetch(
            "SELECT id FROM helpdesk.tickets WHERE status <> ALL($1::text[]) "
            "ORDER BY random() LIMIT $2",
            list(settings.statuses.resolved),
            changes * 2,
        )
    ]
    print(
        f"bursts at the default lag ({settings.source.watermark_lag:.0f} s) and interval "
        f"({settings.daemon.poll_interval:.0f} s), polled in real time:"
    )
    with profiling(profile, "judged burst"):
        print("  " + await burst(daemon, conn, ids[:changes], judged=True))
    print("  " + await burst(daemon, conn, ids[changes:], judged=False))

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
        help="profile the full sync, an idle cycle and the judged burst (pyinstrument if "
        "installed, else cProfile)",
    )
    configure_logging("warning")  # one info line per breach would drown the figures
    asyncio.run(main(parser.parse_args()))

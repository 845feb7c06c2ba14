"""Per-ticket cost and memory of a first sync at several sizes, each from a fresh process.

    python bench/bench_scale.py [SIZES ...] [--closed-per-open K] [--profile]

For each size N (default 10,000 100,000 1,000,000 open tickets) a database is made through
$SLA_MONITOR_BENCH_DSN (else an embedded PostgreSQL), loaded by generate.py with N open and
K x N closed tickets, and dropped at the end. The raw baseline is read once to warm the
database's cache, then a fresh Python process (so nothing earlier is counted) measures:

- its RSS before any read (after imports, the pool and the daemon's migrations): the base;
- the daemon's full sync and first poll (read, judge, record; as `sla-monitor run`, with the
  collector frozen), then its RSS: the memory per open ticket is (after - base) / N;
- the raw baseline: COPY of the open-tickets query and, per batch of the same size and in the
  same order as the source's, COPY of the events query (bench/common.py raw_batched_read);
- the source's read alone (rows to Ticket objects, nothing judged or recorded).

All three timings come from the same process, one after the other, so their ratios are taken
under the same load. A line fitted over the sizes gives the bytes per ticket above a fixed
base, instead of a projection from one size. With --profile, the child prints a cProfile of
the full sync (the 30 functions with the most own time).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import sys
import time
from typing import Any

import asyncpg
from common import helpdesk, raw_batched_read

MIB = 1024 * 1024


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def child(dsn: str, profile: bool) -> dict[str, Any]:
    """One fresh process: memory of the sync first, then the timings side by side."""
    from sla_monitor.app import build_daemon
    from sla_monitor.config import Settings
    from sla_monitor.daemon_options import Hooks
    from sla_monitor.database import POOL_OPTIONS
    from sla_monitor.logs import configure_logging

    configure_logging("warning")
    settings = Settings(database={"dsn": dsn})
    pool = await asyncpg.create_pool(dsn, min_size=1, **POOL_OPTIONS)
    daemon = build_daemon(settings, pool, pool, Hooks(freeze_gc=True))
    await daemon.store.migrate()
    gc.collect()
    base = rss_bytes()
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    began = time.perf_counter()
    await daemon.poll_once()
    sync = time.perf_counter() - began
    if profiler is not None:
        import pstats

        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(30)
    gc.collect()
    after = rss_bytes()
    tracked = len(daemon.tracker)

    conn = await asyncpg.connect(dsn)
    raw, size, rows = await raw_batched_read(conn, settings)
    began = time.perf_counter()
    read_tickets = 0
    async for batch in daemon.source.open_tickets():
        read_tickets += len(batch.tickets) + len(batch.bad_rows)
    read = time.perf_counter() - began
    raw_again, _, _ = await raw_batched_read(conn, settings)
    await conn.close()
    await pool.close()
    return {
        "tracked": tracked,
        "base": base,
        "after": after,
        "sync": sync,
        "raw": min(raw, raw_again),
        "raw_bytes": size,
        "raw_rows": rows,
        "read": read,
        "read_tickets": read_tickets,
    }


async def measure(size: int, closed_per_open: int, profile: bool) -> dict[str, Any]:
    from sla_monitor.config import Settings

    total = size * (1 + closed_per_open)
    async with helpdesk(None, ["--total", str(total), "--open", str(size)]) as dsn:
        conn = await asyncpg.connect(dsn)
        await raw_batched_read(conn, Settings(database={"dsn": dsn}))  # warms the cache
        await conn.close()
        command = [sys.executable, __file__, "--child", dsn] + (["--profile"] if profile else [])
        done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
        figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        figures["size"] = size
        return figures


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares slope and intercept."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else 0.0
    return slope, mean_y - slope * mean_x


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def report(results: list[dict[str, Any]]) -> None:
    print(
        "| open tickets | raw COPY, same batches | source read | full sync + first poll "
        "| read / raw | sync / raw | RSS base -> after | bytes per ticket above base |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        n = r["tracked"] or 1
        print(
            f"| {r['size']:,} | {r['raw']:.2f} s ({r['raw'] / n * 1e6:.1f} µs/ticket) "
            f"| {r['read']:.2f} s ({r['read'] / n * 1e6:.1f} µs) "
            f"| {r['sync']:.2f} s ({r['sync'] / n * 1e6:.1f} µs) "
            f"| {r['read'] / r['raw']:.1f}x | {r['sync'] / r['raw']:.1f}x "
            f"| {r['base'] / MIB:,.0f} -> {r['after'] / MIB:,.0f} MiB "
            f"| {(r['after'] - r['base']) / n:,.0f} |"
        )
    print()
    for r in results:
        if r["size"] >= 100_000:
            ratio = r["sync"] / r["raw"]
            print(
                f"full sync <= 3x raw at {r['size']:,}: {ratio:.1f}x ({verdict(ratio <= 3)}); "
                f"read alone {r['read'] / r['raw']:.1f}x"
            )
    by_size = {r["size"]: r for r in results}
    if 100_000 in by_size and 1_000_000 in by_size:
        small, large = by_size[100_000], by_size[1_000_000]
        per_small = small["sync"] / small["tracked"]
        per_large = large["sync"] / large["tracked"]
        change = per_large / per_small - 1
        print(
            f"linear: {per_large * 1e6:.1f} µs per ticket at 1 M vs {per_small * 1e6:.1f} at "
            f"100 k ({change:+.0%}; within 10 %: {verdict(abs(change) <= 0.10)})"
        )
    if len(results) >= 2:
        slope, intercept = fit([(r["tracked"], r["after"]) for r in results])
        sizes = ", ".join(f"{r['size']:,}" for r in results)
        print(
            f"memory, a line over {sizes}: "
            f"{slope:,.0f} bytes per open ticket above a base of {intercept / MIB:,.0f} MiB "
            f"(<= 600: {verdict(slope <= 600)})"
        )


async def main(args: argparse.Namespace) -> None:
    if args.child:
        print(json.dumps(await child(args.child, args.profile)))
        return
    results = []
    for size in args.sizes:
        figures = await measure(size, args.closed_per_open, args.profile)
        print(
            f"{size:,} open: sync {figures['sync']:.2f} s, raw {figures['raw']:.2f} s, "
            f"read {figures['read']:.2f} s, RSS {figures['base'] / MIB:,.0f} -> "
            f"{figures['after'] / MIB:,.0f} MiB",
            flush=True,
        )
        results.append(figures)
    print()
    report(results)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--closed-per-open", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="cProfile of each full sync")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    asyncio.run(main(parser.parse_args()))

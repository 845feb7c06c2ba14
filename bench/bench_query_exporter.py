"""The same gauges from the peer query-exporter (PyPI) and from sla-monitor, on one database.

    python bench/bench_query_exporter.py [--database-dsn DSN] [--total N --open M]
        [--interval S] [--polls P] [--peer-runs R] [--probes N]

query-exporter runs SQL on an interval and exports what it returns. It is given SQL that
counts the open tickets at risk and breached on the first-response and resolution clocks with
our default policy (1 h / 24 h, at risk at 75 %, wall-clock time; paused statuses left out),
by clock, state and queue. Three phases on the same helpdesk, so that neither exporter's
database time is inflated by the other's:

1. sla-monitor alone (query-exporter not started): its first sync, then P polls
   (`poll_once`, the whole cycle: an upper bound of its database time) 0.25 s apart, and its
   incremental query alone P times; then query-exporter's SQL alone (asyncpg), 5 times.
2. query-exporter alone at the interval, while sla-monitor is synced and idle (its loop not
   started: no poll, no timer): R runs, each run's time from its own `query_latency`
   (the change of its sum between scrapes 100 ms apart).
3. both at the interval, side by side; their /metrics scraped every 100 ms. Staleness for
   both kinds of change, per exporter: deadline crossings (N probe tickets whose first
   response falls due 20-40 s later: deadline -> first scrape counting it breached) and data
   changes committed at random instants over four intervals (N breached tickets get a staff
   reply, so their first-response clock stops; N breached tickets are resolved: commit ->
   first scrape whose gauge no longer counts it). p50 / p90 / p99 (p99 only with at least
   two samples above it) / max. query-exporter's runs during this phase are reported too.
   Then both exporters' gauges at one moment.

query-exporter is installed into ~/.cache/sla-monitor-bench/query-exporter-venv on first use.
Without --database-dsn a fresh database (through $SLA_MONITOR_BENCH_DSN, else embedded) is
loaded with generate.py --total N --open M (default 1,000,000 / 100,000) and dropped
afterwards; with it, a copy of that database is used (see bench/common.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from common import helpdesk
from prometheus_client.parser import text_string_to_metric_families

from sla_monitor.app import build_daemon
from sla_monitor.config import Settings
from sla_monitor.daemon_options import Hooks
from sla_monitor.database import POOL_OPTIONS
from sla_monitor.http import start_http
from sla_monitor.logs import configure_logging

HERE = Path(__file__).resolve().parent
PEER_VENV = Path.home() / ".cache" / "sla-monitor-bench" / "query-exporter-venv"
PEER_SQL = """
SELECT clock, state, queue, count(*) AS sla_open_tickets FROM (
    SELECT 'first_response' AS clock, t.queue,
           CASE WHEN now() - t.created_at > interval '1 hour' THEN 'breached'
                WHEN now() - t.created_at >= interval '45 minutes' THEN 'at_risk'
                ELSE 'ok' END AS state
    FROM helpdesk.tickets t
    WHERE t.status IN ('new', 'open')
      AND NOT EXISTS (SELECT 1 FROM helpdesk.ticket_events e
                      WHERE e.ticket_id = t.id AND e.kind = 'public_reply')
    UNION ALL
    SELECT 'resolution', queue,
           CASE WHEN now() - created_at > interval '24 hours' THEN 'breached'
                WHEN now() - created_at >= interval '18 hours' THEN 'at_risk'
                ELSE 'ok' END
    FROM helpdesk.tickets
    WHERE status IN ('new', 'open')
) s
WHERE state <> 'ok'
GROUP BY clock, state, queue
"""
NAMES = {"sla-monitor": "sla_monitor_open_tickets", "query-exporter": "sla_open_tickets"}
# The probes' queues, and the clock whose breached count each kind of probe moves.
PROBES = {
    "deadline crossed": ("probe-deadline", "first_response"),
    "staff reply": ("probe-reply", "first_response"),
    "resolved": ("probe-resolve", "resolution"),
}
REPLY = (
    "INSERT INTO helpdesk.ticket_events (ticket_id, kind, author) VALUES ($1, 'public_reply', "
    "'staff')"
)
RESOLVE = (
    "UPDATE helpdesk.tickets SET status = 'resolved' WHERE id = $1",
    "INSERT INTO helpdesk.ticket_events (ticket_id, kind, author, new_value, old_value) "
    "VALUES ($1, 'status_change', 'staff', 'resolved', 'new')",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def peer_executable() -> Path:
    executable = PEER_VENV / "bin" / "query-exporter"
    if not executable.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run(
            [str(PEER_VENV / "bin" / "pip"), "install", "-q", "query-exporter", "psycopg[binary]"],
            check=True,
        )
    return executable


def peer_config(dsn: str, interval: float) -> str:
    sql = "\n".join("      " + line for line in PEER_SQL.strip().splitlines())
    return f"""databases:
  helpdesk:
    dsn: {dsn}
metrics:
  sla_open_tickets:
    type: gauge
    description: Open tickets at risk or breached, by clock, state and queue.
    labels: [clock, state, queue]
queries:
  sla:
    interval: {interval:g}
    databases: [helpdesk]
    metrics: [sla_open_tickets]
    sql: |
{sql}
"""


async def scrape(session: aiohttp.ClientSession, url: str) -> dict[tuple[str, ...], float]:
    """Samples by (name, sorted label values...)."""
    async with session.get(url) as response:
        text = await response.text()
    samples: dict[tuple[str, ...], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, *(f"{k}={v}" for k, v in sorted(sample.labels.items())))
            samples[key] = sample.value
    return samples


def total(samples: dict[tuple[str, ...], float], name: str, **wanted: str) -> float:
    """The sum of ``name`` over the samples whose labels include ``wanted``."""
    needed = {f"{k}={v}" for k, v in wanted.items()}
    return sum(value for key, value in samples.items() if key[0] == name and needed <= set(key[1:]))


def helpdesk_total(
    samples: dict[tuple[str, ...], float], name: str, clock: str, state: str
) -> float:
    """``total`` of a clock and state over every queue but the probes'."""
    return total(samples, name, clock=clock, state=state) - sum(
        total(samples, name, clock=clock, state=state, queue=queue) for queue, _ in PROBES.values()
    )


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def spread(values: list[float], unit: float = 1000.0, digits: int = 1) -> str:
    """median, p90 (nearest rank) and max of ``values`` in ms, with their count."""
    return (
        f"median {statistics.median(values) * unit:,.{digits}f} ms, "
        f"p90 {nearest_rank(values, 0.9) * unit:,.{digits}f} ms, "
        f"max {max(values) * unit:,.{digits}f} ms ({len(values)} runs)"
    )


def staleness_line(delays: list[float], wanted: int) -> str:
    """p50 / p90 / p99 / max in ms; p99 by nearest rank only when at least two samples lie
    above it (so that it is never the maximum under another name), as bench_alert_latency."""
    if not delays:
        return f"none seen (0/{wanted})"
    ordered = sorted(delays)
    rank = int(0.99 * len(ordered))
    above = len(ordered) - 1 - rank
    p99 = (
        f"p99 {ordered[rank] * 1000:,.0f} ms"
        if above >= 2
        else f"p99 not reported ({len(ordered)} samples)"
    )
    return (
        f"p50 {statistics.median(ordered) * 1000:,.0f} ms, "
        f"p90 {nearest_rank(ordered, 0.9) * 1000:,.0f} ms, {p99}, "
        f"max {ordered[-1] * 1000:,.0f} ms ({len(ordered)}/{wanted} seen)"
    )


async def timed(action: Callable[[], Awaitable[Any]], runs: int, gap: float = 0.0) -> list[float]:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        await action()
        times.append(time.perf_counter() - began)
        await asyncio.sleep(gap)
    return times


class PeerRuns:
    """query-exporter's runs of its query, each one's seconds from its own query_latency:
    the change of the histogram's sum between two scrapes (divided by the change of its count
    when two runs fell between them)."""

    def __init__(self) -> None:
        self.runs: list[float] = []
        self._count = 0.0
        self._sum = 0.0

    def observe(self, samples: dict[tuple[str, ...], float]) -> None:
        count = total(samples, "query_latency_count")
        latency = total(samples, "query_latency_sum")
        if count > self._count:
            runs = int(count - self._count)
            self.runs.extend([(latency - self._sum) / runs] * runs)
            self._count, self._sum = count, latency


async def main(args: argparse.Namespace) -> None:
    generate = ["--total", str(args.total), "--open", str(args.open)]
    async with helpdesk(args.database_dsn, generate) as dsn:
        settings = Settings(database={"dsn": dsn}, daemon={"poll_interval": args.interval})
        schema = settings.database.schema_name
        conn = await asyncpg.connect(dsn)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        executable = peer_executable()
        version = subprocess.run(
            [str(executable), "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()
        workdir = Path(tempfile.mkdtemp())
        (workdir / "config.yaml").write_text(peer_config(dsn, args.interval))
        pool = await asyncpg.create_pool(dsn, min_size=1, **POOL_OPTIONS)
        daemon = build_daemon(settings, pool, pool, Hooks(freeze_gc=True))
        await daemon.store.migrate()
        peer: subprocess.Popen[bytes] | None = None
        task: asyncio.Task[None] | None = None
        runner = None
        try:
            tickets = await conn.fetchval("SELECT count(*) FROM helpdesk.tickets")
            print(f"{version}; helpdesk of {tickets:,} tickets; interval {args.interval:g} s")
            await alone(args, conn, daemon)

            peer_port = free_port()
            listen = ["--port", str(peer_port), "--host", "127.0.0.1", "--log-level", "warning"]
            config = str(workdir / "config.yaml")
            peer = subprocess.Popen([str(executable), "--config", config, *listen])
            theirs = f"http://127.0.0.1:{peer_port}/metrics"
            async with aiohttp.ClientSession() as session:
                idle = await peer_alone(args, session, theirs)
                print(
                    f"2. query-exporter alone, sla-monitor synced and idle: per run "
                    f"(its query_latency) {spread(idle.runs, digits=0)}"
                )
                task = asyncio.create_task(daemon.run())
                runner = await start_http(daemon, "127.0.0.1", 0)
                ours = f"http://127.0.0.1:{runner.addresses[0][1]}/metrics"
                urls = {"sla-monitor": ours, "query-exporter": theirs}
                await side_by_side(args, conn, daemon, session, urls, idle)
        finally:
            if peer is not None:
                peer.terminate()
                peer.wait(timeout=10)
            daemon.stop()
            if task is not None:
                await task
            if runner is not None:
                await runner.cleanup()
            await pool.close()
            await conn.execute("DELETE FROM helpdesk.tickets WHERE queue LIKE 'probe%'")
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await conn.close()


async def alone(args: argparse.Namespace, conn: asyncpg.Connection, daemon: Any) -> None:
    """Phase 1: sla-monitor alone, query-exporter not started."""
    began = time.perf_counter()
    await daemon.poll_once()  # the first sync, and the first poll
    print(
        f"1. sla-monitor alone: first sync of {len(daemon.tracker):,} open tickets "
        f"{time.perf_counter() - began:.1f} s"
    )
    polls = await timed(daemon.poll_once, args.polls, gap=0.25)
    settings = Settings()
    since = datetime.now(UTC) - timedelta(seconds=settings.source.watermark_lag)
    query = settings.source.changed_tickets_query
    incremental = await timed(lambda: conn.fetch(query, since), args.polls)
    direct = await timed(lambda: conn.fetch(PEER_SQL), 5)
    print(f"   poll cycle (whole cycle, no changes): {spread(polls)}")
    print(f"   its incremental query alone:         {spread(incremental)}")
    print(f"   query-exporter's SQL alone (asyncpg): {spread(direct, digits=0)}")


async def peer_alone(
    args: argparse.Namespace, session: aiohttp.ClientSession, theirs: str
) -> PeerRuns:
    """Phase 2: query-exporter's runs while sla-monitor, synced, does nothing."""
    runs = PeerRuns()
    give_up = time.monotonic() + args.interval * (args.peer_runs + 2) + 60
    while len(runs.runs) < args.peer_runs and time.monotonic() < give_up:
        with contextlib.suppress(aiohttp.ClientConnectionError):  # not listening yet
            runs.observe(await scrape(session, theirs))
        await asyncio.sleep(0.1)
    return runs


async def insert_probes(conn: asyncpg.Connection, queue: str, created: list[datetime]) -> list[int]:
    rows = await conn.fetch(
        "INSERT INTO helpdesk.tickets (subject, queue, created_at) "
        "SELECT 'probe', $1, unnest($2::timestamptz[]) RETURNING id",
        queue,
        created,
    )
    return [row["id"] for row in rows]


def counted(samples: dict[tuple[str, ...], float], who: str, kind: str) -> int:
    queue, clock = PROBES[kind]
    return int(total(samples, NAMES[who], clock=clock, state="breached", queue=queue))


async def side_by_side(
    args: argparse.Namespace,
    conn: asyncpg.Connection,
    daemon: Any,
    session: aiohttp.ClientSession,
    urls: dict[str, str],
    idle: PeerRuns,
) -> None:
    """Phase 3: both at the interval; staleness of deadline crossings and data changes."""
    n = args.probes
    rng = random.Random(5)
    now = datetime.now(UTC)
    # One more ticket than changed in each data-change queue: query-exporter keeps a label
    # set its SQL no longer returns at its last value, so the count must never reach 0.
    reply_ids = await insert_probes(conn, "probe-reply", [now - timedelta(hours=2)] * (n + 1))
    resolve_ids = await insert_probes(conn, "probe-resolve", [now - timedelta(hours=30)] * (n + 1))
    daemon.request_poll()
    busy = PeerRuns()
    give_up = time.monotonic() + args.interval * 3 + 60
    while time.monotonic() < give_up:
        seen = {who: await scrape(session, url) for who, url in urls.items()}
        busy.observe(seen["query-exporter"])
        if all(
            counted(seen[who], who, kind) == n + 1
            for who in urls
            for kind in ("staff reply", "resolved")
        ):
            break
        await asyncio.sleep(0.1)
    else:
        raise SystemExit("the data-change probes never showed breached in both exporters")
    busy.runs.clear()

    now = datetime.now(UTC)
    created = sorted(
        now + timedelta(seconds=rng.uniform(20, 40)) - timedelta(hours=1) for _ in range(n)
    )
    await insert_probes(conn, "probe-deadline", created)
    daemon.request_poll()
    due = {"deadline crossed": [moment.timestamp() + 3600 for moment in created]}
    start = time.time() + 1
    window = args.interval * 4
    schedule = sorted(
        [(start + rng.uniform(0, window), "staff reply", i) for i in reply_ids[:n]]
        + [(start + rng.uniform(0, window), "resolved", i) for i in resolve_ids[:n]]
    )
    due["staff reply"], due["resolved"] = [], []

    async def change() -> None:
        for at, kind, ticket in schedule:
            await asyncio.sleep(max(0.0, at - time.time()))
            async with conn.transaction():
                for statement in (REPLY,) if kind == "staff reply" else RESOLVE:
                    await conn.execute(statement, ticket)
            due[kind].append(time.time())  # committed: the change is visible

    changing = asyncio.create_task(change())
    seen_at: dict[str, dict[str, list[float]]] = {
        who: {kind: [] for kind in PROBES} for who in urls
    }

    def reflected(samples: dict[tuple[str, ...], float], who: str, kind: str) -> int:
        count = counted(samples, who, kind)
        return count if kind == "deadline crossed" else n + 1 - count

    last = max(due["deadline crossed"][-1], start + window)
    give_up_at = last + args.interval * 2 + 15
    while time.time() < give_up_at and any(
        len(stamps) < n for kinds in seen_at.values() for stamps in kinds.values()
    ):
        for who, url in urls.items():
            samples = await scrape(session, url)
            stamp = time.time()
            if who == "query-exporter":
                busy.observe(samples)
            for kind, stamps in seen_at[who].items():
                while len(stamps) < min(reflected(samples, who, kind), n):
                    stamps.append(stamp)
        await asyncio.sleep(0.1)
    await changing

    print(
        f"3. both at the interval; query-exporter per run meanwhile (sla-monitor polling and "
        f"judging the probes): {spread(busy.runs, digits=0) if busy.runs else 'no run'}"
    )
    print(f"   staleness, {n} probes of each kind: change -> first scrape showing it")
    for kind in PROBES:
        what = "deadline" if kind == "deadline crossed" else "commit"
        for who in urls:
            # The k-th change reflected is the k-th made: both count in one snapshot of the
            # database, so a change is never seen before an earlier one.
            delays = [s - d for s, d in zip(seen_at[who][kind], due[kind], strict=False)]
            print(f"   {kind:>16} ({what}) {who:>14}: {staleness_line(delays, n)}")

    ours_now = await scrape(session, urls["sla-monitor"])
    theirs_now = await scrape(session, urls["query-exporter"])
    # The probes' queues are left out: query-exporter keeps the last value of a label set its
    # SQL stopped returning (the deadline probes' at_risk count, once all crossed).
    print(
        "the same moment, open tickets summed over the helpdesk's queues, probes left out "
        "(sla-monitor / query-exporter):"
    )
    for clock in ("first_response", "resolution"):
        for state in ("at_risk", "breached"):
            mine = helpdesk_total(ours_now, NAMES["sla-monitor"], clock, state)
            peer_value = helpdesk_total(theirs_now, NAMES["query-exporter"], clock, state)
            print(f"  {clock:>14} {state:>8}: {mine:>9,.0f} / {peer_value:>9,.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-dsn", help="a helpdesk already loaded by generate.py")
    parser.add_argument("--total", type=int, default=1_000_000, help="tickets generated")
    parser.add_argument("--open", type=int, default=100_000, help="of which open")
    parser.add_argument("--interval", type=float, default=15.0, help="both exporters' interval")
    parser.add_argument("--polls", type=int, default=60, help="sla-monitor polls timed alone")
    parser.add_argument("--peer-runs", type=int, default=8, help="query-exporter runs alone")
    parser.add_argument("--probes", type=int, default=300, help="probes of each kind")
    configure_logging("warning")
    asyncio.run(main(parser.parse_args()))

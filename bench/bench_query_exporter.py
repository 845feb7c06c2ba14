"""The same gauges from the peer query-exporter (PyPI) and from sla-monitor, on one database.

    python bench/bench_query_exporter.py [--database-dsn DSN] [--interval S] [--probes N]

query-exporter runs SQL on an interval and exports what it returns. It is given SQL that
counts the open tickets at risk and breached on the first-response and resolution clocks with
our default policy (1 h / 24 h, at risk at 75 %, wall-clock time; paused statuses left out),
by clock, state and queue. Both exporters run side by side on the same helpdesk:

- per-interval database time: query-exporter's own query_latency histogram (and the same SQL
  timed here with asyncpg), against sla-monitor's poll cycle (its poll-duration histogram,
  which includes its Python work, and its incremental query timed here);
- staleness: N probe tickets (queue "probe") whose first response falls due 20-40 s later;
  both /metrics are scraped every 100 ms and, for each probe, the delay from its deadline to
  the scrape that first counts it breached is recorded;
- the gauges both report at one moment, side by side.

query-exporter is installed into ~/.cache/sla-monitor-bench/query-exporter-venv on first use.
Without --database-dsn a fresh database (through $SLA_MONITOR_BENCH_DSN, else embedded) is
loaded with generate.py --total 1000000 --open 100000 and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

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


async def median_seconds(conn: asyncpg.Connection, sql: str, *args: object) -> float:
    runs = []
    for _ in range(3):
        began = time.perf_counter()
        await conn.fetch(sql, *args)
        runs.append(time.perf_counter() - began)
    return statistics.median(runs)


async def main(args: argparse.Namespace) -> None:
    async with helpdesk(args.database_dsn, ["--total", "1000000", "--open", "100000"]) as dsn:
        settings = Settings(database={"dsn": dsn}, daemon={"poll_interval": args.interval})
        schema = settings.database.schema_name
        conn = await asyncpg.connect(dsn)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.execute("DELETE FROM helpdesk.tickets WHERE queue = 'probe'")
        workdir = Path(tempfile.mkdtemp())
        (workdir / "config.yaml").write_text(peer_config(dsn, args.interval))
        peer_port = free_port()
        executable = peer_executable()
        version = subprocess.run(
            [str(executable), "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()
        listen = ["--port", str(peer_port), "--host", "127.0.0.1", "--log-level", "warning"]
        config = str(workdir / "config.yaml")
        peer = subprocess.Popen([str(executable), "--config", config, *listen])
        pool = await asyncpg.create_pool(dsn, min_size=1, **POOL_OPTIONS)
        daemon = build_daemon(settings, pool, pool, Hooks(freeze_gc=True))
        await daemon.store.migrate()
        began = time.perf_counter()
        task = asyncio.create_task(daemon.run())
        runner = await start_http(daemon, "127.0.0.1", 0)
        ours = f"http://127.0.0.1:{runner.addresses[0][1]}/metrics"
        theirs = f"http://127.0.0.1:{peer_port}/metrics"
        try:
            while not daemon.ready:
                await asyncio.sleep(0.1)
            print(f"{version}; sla-monitor ready after {time.perf_counter() - began:.1f} s")
            async with aiohttp.ClientSession() as session:
                await measure(args, conn, daemon, session, ours, theirs)
        finally:
            peer.terminate()
            peer.wait(timeout=10)
            daemon.stop()
            await task
            await runner.cleanup()
            await pool.close()
            await conn.execute("DELETE FROM helpdesk.tickets WHERE queue = 'probe'")
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await conn.close()


async def measure(
    args: argparse.Namespace,
    conn: asyncpg.Connection,
    daemon: object,
    session: aiohttp.ClientSession,
    ours: str,
    theirs: str,
) -> None:
    # Let both run a few intervals; read their own timings over that span.
    before = await scrape(session, ours)
    await asyncio.sleep(args.interval * 3 + 1)
    after = await scrape(session, ours)
    peer = await scrape(session, theirs)
    polls = total(after, "sla_monitor_poll_duration_seconds_count") - total(
        before, "sla_monitor_poll_duration_seconds_count"
    )
    poll_time = total(after, "sla_monitor_poll_duration_seconds_sum") - total(
        before, "sla_monitor_poll_duration_seconds_sum"
    )
    peer_runs = total(peer, "query_latency_count")
    peer_time = total(peer, "query_latency_sum")
    settings = Settings()
    incremental = await median_seconds(
        conn,
        settings.source.changed_tickets_query,
        datetime.now(UTC) - timedelta(seconds=settings.source.watermark_lag),
    )
    direct = await median_seconds(conn, PEER_SQL)
    print(f"per interval of {args.interval:g} s, database time:")
    if peer_runs:
        print(
            f"  query-exporter: {peer_time / peer_runs * 1000:,.0f} ms per run "
            f"(its query_latency, {peer_runs:.0f} runs); the same SQL here: "
            f"{direct * 1000:,.0f} ms"
        )
    else:
        print(f"  query-exporter: no run reported yet; the same SQL here: {direct * 1000:,.0f} ms")
    if polls:
        print(
            f"  sla-monitor: {poll_time / polls * 1000:,.1f} ms per poll cycle (whole cycle, "
            f"{polls:.0f} polls); its incremental query here: {incremental * 1000:,.1f} ms"
        )

    rng = random.Random(5)
    now = datetime.now(UTC)
    created = sorted(
        now + timedelta(seconds=rng.uniform(20, 40)) - timedelta(hours=1)
        for _ in range(args.probes)
    )
    await conn.execute(
        "INSERT INTO helpdesk.tickets (subject, queue, created_at) "
        "SELECT 'probe', 'probe', unnest($1::timestamptz[])",
        created,
    )
    daemon.request_poll()  # type: ignore[attr-defined]
    deadlines = [moment.timestamp() + 3600 for moment in created]
    seen: dict[str, list[float]] = {"sla-monitor": [], "query-exporter": []}
    urls = {"sla-monitor": ours, "query-exporter": theirs}
    names = {"sla-monitor": "sla_monitor_open_tickets", "query-exporter": "sla_open_tickets"}
    give_up = deadlines[-1] + args.interval * 2 + 10
    while time.time() < give_up and any(len(v) < args.probes for v in seen.values()):
        for who, url in urls.items():
            samples = await scrape(session, url)
            count = total(
                samples, names[who], clock="first_response", state="breached", queue="probe"
            )
            stamp = time.time()
            while len(seen[who]) < min(int(count), args.probes):
                seen[who].append(stamp)
        await asyncio.sleep(0.1)
    print(f"staleness: deadline -> first scrape counting the probe breached ({args.probes} probes)")
    for who, stamps in seen.items():
        delays = sorted(s - d for s, d in zip(stamps, deadlines, strict=False))
        if not delays:
            print(f"  {who}: none seen")
            continue
        print(
            f"  {who}: p50 {statistics.median(delays) * 1000:,.0f} ms, "
            f"max {delays[-1] * 1000:,.0f} ms ({len(delays)}/{args.probes} seen)"
        )

    ours_now, theirs_now = await scrape(session, ours), await scrape(session, theirs)
    print("the same moment, open tickets summed over queues (sla-monitor / query-exporter):")
    for clock in ("first_response", "resolution"):
        for state in ("at_risk", "breached"):
            mine = total(ours_now, "sla_monitor_open_tickets", clock=clock, state=state)
            peer_value = total(theirs_now, "sla_open_tickets", clock=clock, state=state)
            print(f"  {clock:>14} {state:>8}: {mine:>9,.0f} / {peer_value:>9,.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-dsn", help="a helpdesk already loaded by generate.py")
    parser.add_argument("--interval", type=float, default=15.0, help="both exporters' interval")
    parser.add_argument("--probes", type=int, default=20)
    configure_logging("warning")
    asyncio.run(main(parser.parse_args()))

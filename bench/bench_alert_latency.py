"""Deadline-to-alert latency, in real time, optionally while the daemon tracks a large helpdesk.

    python bench/bench_alert_latency.py [--probes N] [--database-dsn DSN]

The daemon and its outbox sender run as `sla-monitor run` does (gc frozen after the sync),
escalating breached clocks to a local webhook that stamps each arrival. Once the first sync
is done, N probe tickets are inserted whose first-response deadline falls 20-40 s later (the
daemon is asked to poll at once, as a helpdesk's change would be seen on its next poll); it
prints p50/p99/max of (arrival - deadline) for their `oncall` (breached) escalation.

With --database-dsn (a helpdesk loaded by generate.py) the daemon first syncs that backlog;
the backlog's own escalations are marked delivered before the probes (as if on-call had been
paged for them already), so the probes measure the timer path, not a queue of old pages.
Without it, a fresh database through $SLA_MONITOR_BENCH_DSN (else embedded) holds the probes
alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

import asyncpg
from aiohttp import web
from common import helpdesk

from sla_monitor.app import build_daemon, build_sender
from sla_monitor.config import Settings
from sla_monitor.daemon_options import Hooks
from sla_monitor.database import POOL_OPTIONS
from sla_monitor.logs import configure_logging


async def main(probes: int, given: str | None) -> None:
    arrivals: dict[str, float] = {}

    async def receive(request: web.Request) -> web.Response:
        alert = json.loads(await request.read())
        if alert["action"] == "trigger" and alert["labels"]["level"] == "oncall":
            arrivals.setdefault(alert["labels"]["ticket_id"], time.time())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with helpdesk(given, None) as dsn:
        settings = Settings(
            database={"dsn": dsn},
            escalation={
                "enabled": True,
                "channels": {"webhook": {"url": f"http://127.0.0.1:{port}/hook", "secret": "s"}},
                "levels": [{"name": "oncall", "when": "breached", "channels": ["webhook"]}],
                # Every probe a page of its own: the storm guard would fold all beyond 60 a
                # minute into a digest (it has its own tests), and their latency with them.
                "max_pages_per_minute": probes + 100,
            },
        )
        schema = settings.database.schema_name
        conn = await asyncpg.connect(dsn)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        pool = await asyncpg.create_pool(dsn, min_size=1, **POOL_OPTIONS)
        daemon = build_daemon(settings, pool, pool, Hooks(freeze_gc=True))
        sender = build_sender(settings, daemon.tracker, daemon.metrics, pool)
        daemon.hooks = Hooks(freeze_gc=True, on_outbox=sender.wake)  # as `run` wires them
        await daemon.store.migrate()
        began = time.perf_counter()
        deadlines: dict[str, float] = {}
        tasks = [asyncio.create_task(daemon.run())]
        try:
            while not daemon.ready:
                await asyncio.sleep(0.1)
            print(
                f"daemon ready: {len(daemon.tracker):,} open tickets tracked after "
                f"{time.perf_counter() - began:.1f} s"
            )
            backlog = await conn.execute(
                f'UPDATE "{schema}".outbox SET delivered_at = now() WHERE delivered_at IS NULL'
            )
            print(f"backlog escalations marked delivered: {int(backlog.split()[-1]):,}")
            tasks.append(asyncio.create_task(sender.run()))
            rng = random.Random(3)
            now = datetime.now(UTC)
            created = [
                now + timedelta(seconds=rng.uniform(20, 40)) - timedelta(hours=1)
                for _ in range(probes)
            ]
            rows = await conn.fetch(
                "INSERT INTO helpdesk.tickets (subject, created_at) "
                "SELECT 'probe', unnest($1::timestamptz[]) RETURNING id::text, created_at",
                created,
            )
            daemon.request_poll()
            deadlines = {
                row["id"]: (row["created_at"] + timedelta(hours=1)).timestamp() for row in rows
            }
            last = max(deadlines.values())
            while len(arrivals.keys() & deadlines.keys()) < probes and time.time() < last + 30:
                await asyncio.sleep(0.2)
        finally:
            daemon.stop()
            sender.stop()
            await asyncio.gather(*tasks)
            await sender.close()
            await pool.close()
            await conn.execute("DELETE FROM helpdesk.tickets WHERE subject = 'probe'")
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await conn.close()
            await runner.cleanup()
    latencies = sorted(arrivals[t] - d for t, d in deadlines.items() if t in arrivals)
    print(f"{len(latencies)}/{probes} probe breaches alerted")
    if latencies:
        # p99 by nearest rank; reported only when at least two samples lie above it, so that
        # it is never the maximum under another name.
        rank = int(0.99 * len(latencies))
        above = len(latencies) - 1 - rank
        p99 = (
            f"p99 {latencies[rank] * 1000:.0f} ms ({above} of {len(latencies)} above it)"
            if above >= 2
            else f"p99 not reported ({len(latencies)} probes: run --probes 300 or more)"
        )
        print(
            f"deadline -> webhook arrival: p50 {statistics.median(latencies) * 1000:.0f} ms, "
            f"{p99}, max {latencies[-1] * 1000:.0f} ms "
            f"(target < 1 s: {'target met' if latencies[-1] < 1 else 'TARGET MISSED'})"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=300)
    parser.add_argument("--database-dsn", help="a helpdesk already loaded by generate.py")
    args = parser.parse_args()
    configure_logging("warning")
    asyncio.run(main(args.probes, args.database_dsn))

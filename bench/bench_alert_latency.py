"""Deadline-to-alert latency: tickets whose first-response deadline falls in the next ~25 s,
the daemon and its outbox sender running in real time, a local webhook peer stamping arrival.
Prints p50/p99/max of (arrival - deadline) for the `oncall` (breached) escalation.

Run: python bench/bench_alert_latency.py [N]   (DSN: $SLA_MONITOR_BENCH_DSN, else embedded)
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from aiohttp import web

from sla_monitor.app import build_daemon, build_sender
from sla_monitor.config import Settings
from sla_monitor.sources.sql import REFERENCE_SCHEMA


async def main(n: int) -> None:
    dsn = os.environ.get("SLA_MONITOR_BENCH_DSN")
    server = None
    if dsn is None:
        import pgserver

        server = pgserver.get_server(tempfile.mkdtemp(), cleanup_mode="stop")
        dsn = server.get_uri()
    admin = await asyncpg.connect(dsn)
    name = f"sla_bench_{uuid.uuid4().hex[:8]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    db = dsn.rsplit("/", 1)[0] + f"/{name}" + ("?" + dsn.split("?", 1)[1] if "?" in dsn else "")
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
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        conn = await asyncpg.connect(db)
        await conn.execute(REFERENCE_SCHEMA)
        rng = random.Random(3)
        now = datetime.now(UTC)
        deadlines = {}
        for _ in range(n):
            deadline = now + timedelta(seconds=rng.uniform(5, 25))
            ticket = await conn.fetchval(
                "INSERT INTO helpdesk.tickets (created_at) VALUES ($1) RETURNING id::text",
                deadline - timedelta(hours=1),
            )
            deadlines[ticket] = deadline.timestamp()
        settings = Settings(
            escalation={
                "enabled": True,
                "channels": {"webhook": {"url": f"http://127.0.0.1:{port}/hook", "secret": "s"}},
                "levels": [{"name": "oncall", "when": "breached", "channels": ["webhook"]}],
            }
        )
        pool = await asyncpg.create_pool(db, min_size=1, max_size=4)
        daemon = build_daemon(settings, pool, pool)
        sender = build_sender(settings, daemon, pool)
        await daemon.store.migrate()
        tasks = [asyncio.create_task(daemon.run()), asyncio.create_task(sender.run())]
        await asyncio.sleep(30)
        daemon.stop()
        sender.stop()
        await asyncio.gather(*tasks)
        await sender.close()
        await pool.close()
        await conn.close()
        latencies = sorted(arrivals[t] - d for t, d in deadlines.items() if t in arrivals)
        print(f"{len(latencies)}/{n} breaches alerted")
        if latencies:

            def pct(p: float) -> float:
                return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

            print(
                f"deadline -> webhook arrival: p50 {pct(0.5):.0f} ms, p99 {pct(0.99):.0f} ms, "
                f"max {latencies[-1] * 1000:.0f} ms"
            )
    finally:
        await runner.cleanup()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        if server is not None:
            server.cleanup()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200))

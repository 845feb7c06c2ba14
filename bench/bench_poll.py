"""Poll-cycle figures on the reference schema: bulk-loads N open tickets with events (COPY),
then times the daemon's initial sync, an incremental cycle with C changed tickets, an idle
cycle, a /metrics scrape, and reports RSS.

Run: python bench/bench_poll.py [N] [C]   (DSN: $SLA_MONITOR_BENCH_DSN, else embedded)
"""

from __future__ import annotations

import asyncio
import os
import random
import resource
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from prometheus_client import generate_latest

from sla_monitor.app import build_daemon
from sla_monitor.config import Settings
from sla_monitor.sources.sql import REFERENCE_SCHEMA


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def load(conn: asyncpg.Connection, n: int) -> None:
    rng = random.Random(1)
    now = datetime.now(UTC)
    tickets = []
    events = []
    for i in range(1, n + 1):
        created = now - timedelta(minutes=rng.uniform(0, 3000))
        tickets.append(
            (
                i,
                f"ticket {i}",
                rng.choice(("support", "billing", "hosting")),
                rng.choice(("urgent", "high", "normal", "low")),
                "open",
                created,
                now,
            )
        )
        events.append((i, "public_reply", created + timedelta(minutes=rng.uniform(1, 90))))
        if rng.random() < 0.3:
            events.append((i, "internal_note", created + timedelta(minutes=5)))
    await conn.copy_records_to_table(
        "tickets",
        schema_name="helpdesk",
        records=tickets,
        columns=["id", "subject", "queue", "priority", "status", "created_at", "updated_at"],
    )
    await conn.copy_records_to_table(
        "ticket_events",
        schema_name="helpdesk",
        records=events,
        columns=["ticket_id", "kind", "created_at"],
    )
    await conn.execute("SELECT setval('helpdesk.tickets_id_seq', $1)", n)


async def main(n: int, changes: int) -> None:
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
    try:
        conn = await asyncpg.connect(db)
        await conn.execute(REFERENCE_SCHEMA)
        began = time.perf_counter()
        await load(conn, n)
        print(f"loaded {n} open tickets in {time.perf_counter() - began:.1f} s")
        pool = await asyncpg.create_pool(db, min_size=1, max_size=4)
        settings = Settings()
        daemon = build_daemon(settings, pool, pool)
        await daemon.store.migrate()
        base = rss_mib()
        began = time.perf_counter()
        await daemon.poll_once()
        sync = time.perf_counter() - began
        print(f"initial sync + first poll: {sync:.2f} s ({n / sync:,.0f} tickets/s)")
        print(
            f"RSS: {rss_mib():.0f} MiB, {(rss_mib() - base) * 1024 * 1024 / n:,.0f} bytes "
            "per tracked open ticket"
        )
        idle = []
        for _ in range(5):
            began = time.perf_counter()
            await daemon.poll_once()
            idle.append(time.perf_counter() - began)
        print(f"idle cycle (no changes): median {sorted(idle)[2] * 1000:.1f} ms")
        rng = random.Random(2)
        ids = rng.sample(range(1, n + 1), changes)
        await asyncio.sleep(settings.source.watermark_lag + 1)  # leave the lag window
        await daemon.poll_once()
        await conn.execute(
            "INSERT INTO helpdesk.ticket_events (ticket_id, kind) SELECT unnest($1::bigint[]),"
            " 'customer_message'",
            ids,
        )
        began = time.perf_counter()
        await daemon.poll_once()
        print(
            f"incremental cycle with {changes} changed tickets: "
            f"{(time.perf_counter() - began) * 1000:.1f} ms"
        )
        began = time.perf_counter()
        body = generate_latest(daemon.metrics.registry)
        print(
            f"/metrics render: {(time.perf_counter() - began) * 1000:.1f} ms, "
            f"{len(body) / 1024:.0f} KiB"
        )
        await pool.close()
        await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        if server is not None:
            server.cleanup()


if __name__ == "__main__":
    asyncio.run(
        main(
            int(sys.argv[1]) if len(sys.argv) > 1 else 100_000,
            int(sys.argv[2]) if len(sys.argv) > 2 else 1000,
        )
    )

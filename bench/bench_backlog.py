"""A first start on a backlog: the messages queued, per `[escalation] backlog` mode.

    python bench/bench_backlog.py [--total N] [--open M] [--backlog summary|page|record]
                                  [--database-dsn DSN]

Without --database-dsn it creates a database through $SLA_MONITOR_BENCH_DSN (an admin DSN;
else an embedded PostgreSQL), loads it with bench/generate.py (in a child process) and drops
it at the end. With --database-dsn it works on a copy of that helpdesk (CREATE DATABASE ...
TEMPLATE; no other session may use it meanwhile), dropped at the end.

Escalations on, two levels: `team` when a clock is at risk, to a Slack channel, and `oncall`
when it is breached, to PagerDuty (both pointed at a closed local port: no sender runs, nothing
is delivered; what the first start queues is counted in the outbox). Per mode (by default
`summary` then `page`, on the same helpdesk, the daemon's schema dropped before each): the
daemon's first start (`build_daemon`, as `run` does; the full sync and first poll that record
the first watermark), then the open tickets, the escalations recorded (of them the backlog's),
the outbox messages queued per channel and action, the first sync's seconds and the first lines
of each summary message.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import time

import asyncpg
from common import helpdesk

from sla_monitor.app import build_daemon
from sla_monitor.config import Settings
from sla_monitor.daemon_options import Hooks
from sla_monitor.database import POOL_OPTIONS
from sla_monitor.logs import configure_logging

MODES = ("summary", "page", "record")
NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing runs a sender here anyway


def settings_for(dsn: str, mode: str) -> Settings:
    return Settings(
        database={"dsn": dsn},
        escalation={
            "enabled": True,
            "backlog": mode,
            "channels": {
                "slack": {"webhook_url": f"{NOWHERE}/slack"},
                "pagerduty": {"url": f"{NOWHERE}/pagerduty", "routing_key": "bench"},
            },
            "levels": [
                {"name": "team", "when": "at_risk", "channels": ["slack"]},
                {
                    "name": "oncall",
                    "when": "breached",
                    "channels": ["pagerduty"],
                    "severity": "critical",
                },
            ],
        },
    )


async def first_start(dsn: str, mode: str) -> None:
    settings = settings_for(dsn, mode)
    schema = settings.database.schema_name
    conn = await asyncpg.connect(dsn)
    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    pool = await asyncpg.create_pool(dsn, min_size=1, **POOL_OPTIONS)
    try:
        daemon = build_daemon(settings, pool, pool, Hooks(freeze_gc=True))  # as `run` does
        await daemon.store.migrate()
        began = time.perf_counter()
        await daemon.poll_once()  # the full sync and first poll: the first watermark
        sync = time.perf_counter() - began
        tracked = len(daemon.tracker)
        watermark = daemon.watermark
        del daemon
        gc.unfreeze()  # the next mode's daemon starts as this one did
        gc.collect()
        escalations = await conn.fetch(
            f'SELECT level, backlog, count(*) AS n FROM "{schema}".escalations '
            "WHERE resolved_at IS NULL GROUP BY level, backlog ORDER BY level, backlog"
        )
        outbox = await conn.fetch(
            f"SELECT channel, action, coalesce(payload->>'kind', 'escalation') AS kind, "
            f'count(*) AS n FROM "{schema}".outbox GROUP BY 1, 2, 3 ORDER BY 1, 2, 3'
        )
        summaries = await conn.fetch(
            f'SELECT channel, payload FROM "{schema}".outbox '
            "WHERE payload->>'kind' = 'backlog' ORDER BY channel"
        )
    finally:
        await pool.close()
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()

    print(f"--- backlog = {mode!r} ---")
    print(f"open tickets tracked: {tracked:,}; first watermark recorded: {watermark is not None}")
    print(f"first sync (read, judge, record, queue) + first poll: {sync:.1f} s")
    total = sum(row["n"] for row in escalations)
    print(f"escalations recorded (active): {total:,}")
    for row in escalations:
        what = "backlog (no message of its own)" if row["backlog"] else "paged"
        print(f"  {row['level']:<8} {what:<32} {row['n']:>10,}")
    queued = sum(row["n"] for row in outbox)
    print(f"outbox messages queued: {queued:,}")
    for row in outbox:
        print(f"  {row['channel']:<10} {row['action']:<8} {row['kind']:<11} {row['n']:>10,}")
    for row in summaries:
        payload = json.loads(row["payload"])
        annotations = payload["annotations"]
        print(f"summary to {row['channel']} ({payload['labels']['level']}):")
        print(f"  {annotations['summary']}")
        print(f"  dedup_key {payload['dedup_key']}; link {annotations['ticket_url']}")


async def main(args: argparse.Namespace) -> None:
    sizes = ["--total", str(args.total), "--open", str(args.open), "--seed", str(args.seed)]
    modes = [args.backlog] if args.backlog else ["summary", "page"]
    async with helpdesk(args.database_dsn, sizes) as dsn:
        conn = await asyncpg.connect(dsn)
        resolved = list(Settings(database={"dsn": dsn}).statuses.resolved)
        open_count = await conn.fetchval(
            "SELECT count(*) FROM helpdesk.tickets WHERE status <> ALL($1::text[])", resolved
        )
        total = await conn.fetchval("SELECT count(*) FROM helpdesk.tickets")
        await conn.close()
        print(f"helpdesk: {total:,} tickets, {open_count:,} open; {os.cpu_count()} cores")
        for mode in modes:
            await first_start(dsn, mode)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total", type=int, default=1_000_000)
    parser.add_argument("--open", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--backlog", choices=MODES, help="one mode only (default: summary, then page)"
    )
    parser.add_argument("--database-dsn", help="a helpdesk already loaded by generate.py")
    configure_logging("warning")  # one info line per breach would drown the figures
    asyncio.run(main(parser.parse_args()))

"""Channel independence and recovery of the outbox senders, in real time, default settings.

    python bench/bench_channels.py [--pages N] [--outage SECONDS] [--database-dsn DSN]

1. Slack hangs (every request waits past the 10 s timeout) while N pages for PagerDuty are
   queued, one every 0.1 s, each beside a Slack message: queue-to-arrival latency of the pages
   (p50/p99/max).
2. A webhook answers 503 for --outage seconds while N messages are queued over that time; then
   it answers again: the time from its recovery until the whole backlog has arrived.

Outbox rows are inserted directly (what the daemon records); the sender is `sla-monitor run`'s.
Without --database-dsn a fresh database through $SLA_MONITOR_BENCH_DSN (else embedded).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp import web
from common import helpdesk

from sla_monitor.app import build_daemon, build_sender
from sla_monitor.config import Settings
from sla_monitor.database import POOL_OPTIONS
from sla_monitor.logs import configure_logging


class Peer:
    """Answers ``behaviour(path)``: "ok", "hang" or a status; stamps arrivals by dedup key."""

    def __init__(self) -> None:
        self.behaviour: Callable[[str], Any] = lambda path: "ok"
        self.arrivals: dict[str, float] = {}
        self.released = asyncio.Event()
        self.url = ""

    async def start(self) -> web.AppRunner:
        async def receive(request: web.Request) -> web.Response:
            body = json.loads(await request.read())
            answer = self.behaviour(request.path)
            if answer == "hang":
                await self.released.wait()
                return web.Response(status=503)
            if answer != "ok":
                return web.Response(status=answer)
            self.arrivals.setdefault(body["dedup_key"], time.monotonic())
            return web.json_response({"status": "success"}, status=202)

        app = web.Application()
        app.router.add_post("/{path:.*}", receive)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        return runner


async def queue(pool: asyncpg.Pool, channel: str, key: str) -> None:
    alert = {
        "labels": {"level": "oncall", "severity": "critical"},
        "annotations": {"summary": key},
        "startsAt": datetime.now(UTC).isoformat(),
        "dedup_key": key,
    }
    await pool.execute(
        "INSERT INTO sla_monitor.outbox (dedup_key, action, channel, payload)"
        " VALUES ($1, 'trigger', $2, $3)",
        key,
        channel,
        json.dumps(alert),
    )


async def started(
    dsn: str, channels: dict[str, Any]
) -> tuple[asyncpg.Pool, Any, asyncio.Task[None]]:
    settings = Settings(
        database={"dsn": dsn},
        escalation={
            "enabled": True,
            "channels": channels,
            "levels": [{"name": "oncall", "when": "breached", "channels": list(channels)}],
        },
    )
    pool = await asyncpg.create_pool(dsn, **{**POOL_OPTIONS, "min_size": 0, "max_size": 8})
    daemon = build_daemon(settings, pool, pool)
    await daemon.store.migrate()
    await pool.execute("TRUNCATE sla_monitor.outbox")
    sender = build_sender(settings, daemon.tracker, daemon.metrics, pool)
    return pool, sender, asyncio.create_task(sender.run())


async def stopped(pool: asyncpg.Pool, sender: Any, task: asyncio.Task[None]) -> None:
    sender.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await sender.close()
    await pool.close()


def wake(sender: Any) -> None:
    """As the daemon does after each flush (``wakeup.set`` before channels were independent,
    so that this measures the code before and after)."""
    (getattr(sender, "wake", None) or sender.wakeup.set)()


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered):.3f} s, p99 {p99:.3f} s, max {ordered[-1]:.3f} s"


async def hanging_neighbour(dsn: str, peer: Peer, pages: int) -> None:
    peer.behaviour = lambda path: "hang" if path == "/slack" else "ok"
    pool, sender, task = await started(
        dsn,
        {
            "slack": {"webhook_url": f"{peer.url}/slack"},
            "pagerduty": {"url": f"{peer.url}/pagerduty", "routing_key": "k"},
        },
    )
    queued: dict[str, float] = {}
    for n in range(pages):
        await queue(pool, "slack", f"slack-{n}")
        queued[f"page-{n}"] = time.monotonic()
        await queue(pool, "pagerduty", f"page-{n}")
        wake(sender)
        await asyncio.sleep(0.1)
    deadline = time.monotonic() + 60
    while not set(queued) <= set(peer.arrivals) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await stopped(pool, sender, task)
    latencies = [peer.arrivals[k] - t for k, t in queued.items() if k in peer.arrivals]
    print(f"1. Slack hanging (10 s timeout): {len(latencies)}/{pages} pages arrived")
    print(f"   queue -> PagerDuty arrival: {percentiles(latencies)}")


async def outage(dsn: str, peer: Peer, messages: int, seconds: float) -> None:
    down = True
    peer.behaviour = lambda path: 503 if down else "ok"
    peer.arrivals.clear()
    pool, sender, task = await started(dsn, {"webhook": {"url": f"{peer.url}/hook", "secret": "s"}})
    for n in range(messages):
        await queue(pool, "webhook", f"msg-{n}")
        wake(sender)
        await asyncio.sleep(seconds / messages)
    down, recovered = False, time.monotonic()
    deadline = recovered + 600
    while len(peer.arrivals) < messages and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await stopped(pool, sender, task)
    drained = max(peer.arrivals.values()) - recovered
    print(f"2. webhook 503 for {seconds:.0f} s, {messages} messages queued meanwhile:")
    print(
        f"   {len(peer.arrivals)}/{messages} delivered; recovery -> backlog drained {drained:.2f} s"
    )


async def main(pages: int, seconds: float, given: str | None) -> None:
    peer = Peer()
    runner = await peer.start()
    try:
        async with helpdesk(given, None) as dsn:
            await hanging_neighbour(dsn, peer, pages)
            await outage(dsn, peer, pages, seconds)
            async with asyncpg.create_pool(dsn) as pool:
                await pool.execute("DROP SCHEMA IF EXISTS sla_monitor CASCADE")
    finally:
        peer.released.set()
        await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--outage", type=float, default=30.0)
    parser.add_argument("--database-dsn")
    args = parser.parse_args()
    configure_logging("error")
    asyncio.run(main(args.pages, args.outage, args.database_dsn))

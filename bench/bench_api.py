"""The HTTP API's listing at scale: a Tracker filled with N open tickets, no database.

Usage: python bench/bench_api.py [N ...]   (default: 100000 1000000)

For each N: fills a Tracker with generated open tickets (created over the last 30 hours, 20
queues, 4 priorities, a public reply on half, a pending spell on a fifth), then prints the
RSS it added per ticket, the first listing (which builds the listing's index) and the RSS with
the index, and the median and fastest milliseconds of API requests through a
real aiohttp server on 127.0.0.1 (JSON encoding included). Run it against an older checkout
(PYTHONPATH) to compare the memory: without ``Tracker.listing`` it prints the memory only.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sla_monitor.engine import EventKind, PolicySet, Ticket, TicketEvent
from sla_monitor.tracker import Tracker

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
QUEUES = [f"queue-{n:02d}" for n in range(20)]
PRIORITIES = ["urgent", "high", "normal", "low"]
RUNS = 15


def rss() -> int:
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def tickets(count: int, seed: int = 7) -> Any:
    rng = random.Random(seed)
    for index in range(count):
        created = NOW - timedelta(seconds=rng.randrange(30 * 3600))
        age = (NOW - created).total_seconds()
        events: list[TicketEvent] = []
        if rng.random() < 0.5:
            events.append(
                TicketEvent(created + timedelta(seconds=rng.random() * age), EventKind.PUBLIC_REPLY)
            )
        if rng.random() < 0.2:
            start = created + timedelta(seconds=rng.random() * age)
            events.append(TicketEvent(start, EventKind.STATUS_CHANGE, "pending"))
            if rng.random() < 0.5:
                back = start + timedelta(seconds=rng.random() * (NOW - start).total_seconds())
                events.append(TicketEvent(back, EventKind.STATUS_CHANGE, "open"))
        events.sort(key=lambda e: e.at)
        yield Ticket(
            ticket_id=str(1_000_000 + index),
            created_at=created,
            queue=rng.choice(QUEUES),
            initial_status="new",
            initial_priority=rng.choice(PRIORITIES),
            subject=f"Cannot log in to the portal (ticket {index})",
            events=tuple(events),
        )


async def stepwise(tracker: Tracker) -> tuple[float, float]:
    """Seconds Tracker.prepare_listing takes, and the longest it holds the event loop (a
    task that yields in a loop measures the gaps)."""
    longest, done = 0.0, False

    async def ticker() -> None:
        nonlocal longest
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0)
            now = time.perf_counter()
            longest, last = max(longest, now - last), now

    watching = asyncio.create_task(ticker())
    started = time.perf_counter()
    await tracker.prepare_listing()
    took = time.perf_counter() - started
    done = True
    await watching
    return took, longest


async def requests(tracker: Tracker) -> list[tuple[str, float, float, int]]:
    from aiohttp.test_utils import TestClient, TestServer

    from sla_monitor.http import make_app
    from sla_monitor.testing import MemoryStore

    # A ticket's explanation reads its ledger from the store: an empty one in memory here.
    daemon = SimpleNamespace(tracker=tracker, clock=lambda: NOW, store=MemoryStore())
    some = next(iter(tracker.ids()))
    async with TestClient(TestServer(make_app(daemon))) as client:  # type: ignore[arg-type]
        first = await (await client.get("/api/v1/tickets?state=at_risk,breached")).json()
        cursor = first["next_cursor"]
        deep = tracker.listing(states={"at_risk", "breached"}, limit=1)[0]
        paths = [
            "/api/v1/tickets?state=at_risk,breached&sort=deadline&limit=50",
            f"/api/v1/tickets?state=at_risk,breached&limit=50&cursor={cursor}",
            "/api/v1/tickets?state=at_risk&clock=resolution&queue=queue-03&priority=urgent",
            "/api/v1/tickets?state=paused&limit=50",
            "/api/v1/tickets?limit=50",
            f"/api/v1/tickets/{some}",
        ]
        del deep
        results = []
        for path in paths:
            times, count = [], 0
            for _ in range(RUNS):
                started = time.perf_counter()
                response = await client.get(path)
                body = await response.json()
                times.append((time.perf_counter() - started) * 1000)
                assert response.status == 200, body
                count = len(body.get("tickets", [body]))
            results.append((path, statistics.median(times), min(times), count))
        return results


def main(sizes: list[int]) -> None:
    for size in sizes:
        gc.collect()
        before = rss()
        tracker = Tracker(PolicySet())
        started = time.perf_counter()
        for ticket in tickets(size):
            tracker.update(ticket, NOW)
        filled = time.perf_counter() - started
        gc.collect()
        gc.freeze()  # as the daemon does after its first sync (Hooks.freeze_gc)
        added = rss() - before
        print(
            f"{size:,} tracked: filled in {filled:.1f} s; RSS +{added / 2**20:,.0f} MiB, "
            f"{added / size:,.0f} bytes per ticket"
        )
        if not hasattr(tracker, "listing"):
            print("  (no Tracker.listing in this checkout: memory only)")
            continue
        # The listing's index is built at the first listing (not kept by every update), in
        # steps that give the event loop back: the first request after a start waits for it.
        built, held = asyncio.run(stepwise(tracker))
        gc.collect()
        indexed = rss() - before
        print(
            f"  first listing (builds the index): {built * 1000:,.0f} ms, the event loop held "
            f"at most {held * 1000:,.0f} ms at a time; RSS then {indexed / size:,.0f} bytes "
            "per ticket"
        )
        counts = {state: len(tracker.listing(states={state}, limit=size)) for state in ("at_risk",)}
        print(f"  tickets with an at_risk clock: {counts['at_risk']:,}")
        for path, median, fastest, count in asyncio.run(requests(tracker)):
            print(f"  {median:8.1f} ms median {fastest:8.1f} ms min  {count:>3} items  GET {path}")
        del tracker
        gc.unfreeze()
        gc.collect()


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [100_000, 1_000_000])

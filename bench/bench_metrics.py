"""The /metrics scrape when queues are many: 10,000 queues x 3 open tickets, then all resolved.
Run: python bench/bench_metrics.py [QUEUES] [TICKETS_PER_QUEUE] [MAX_QUEUES]

Times ``generate_latest`` of the daemon's registry (the body /metrics serves) and prints the
series of sla_monitor_open_tickets, the bytes and the milliseconds, next to the rule it replaced
(every clock x state x configured priority x queue ever seen, zeros included), which it also
times by running that collector. No database: the tickets go through Tracker.update at a fixed
`now`.
"""

from __future__ import annotations

import logging
import statistics
import sys
import time
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import structlog
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sla_monitor.engine import Clock, ClockState, EventKind, PolicySet, Ticket, TicketEvent
from sla_monitor.metrics import Metrics
from sla_monitor.tracker import Tracker

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
PRIORITIES = ("urgent", "high", "normal", "low")
RUNS = 5


class _EveryQueueEverSeen(Collector):
    """The replaced rule, for comparison: zeros for every priority and every queue ever seen."""

    def __init__(self, tracker: Tracker, queues: set[str]) -> None:
        self._tracker = tracker
        self._queues = queues

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "sla_monitor_open_tickets",
            "Open tickets by SLA clock and its state.",
            labels=["clock", "state", "priority", "queue"],
        )
        counts = dict(self._tracker.counts)
        for clock in Clock:
            for state in ClockState:
                if state is ClockState.MET:
                    continue
                for priority in sorted(self._tracker.policies.priorities):
                    for queue in sorted(self._queues):
                        key = (clock.value, state.value, priority, queue)
                        family.add_metric(list(key), counts.get(key, 0))
        yield family


def scrape(registry: CollectorRegistry) -> tuple[int, int, float, float]:
    """(open-ticket series, bytes, median ms, fastest ms) of ``RUNS`` scrapes."""
    body = generate_latest(registry)
    times = []
    for _ in range(RUNS):
        began = time.perf_counter()
        body = generate_latest(registry)
        times.append((time.perf_counter() - began) * 1000)
    series = body.count(b"\nsla_monitor_open_tickets{")
    return series, len(body), statistics.median(times), min(times)


def main() -> None:
    queues = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    per_queue = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    max_queues = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    # One warning per folded queue is the daemon's behaviour; here it would only flood stderr.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))

    tracker = Tracker(PolicySet())
    metrics = Metrics(tracker, max_queues=max_queues)
    tickets = [
        Ticket(
            ticket_id=f"{q}-{n}",
            # Ages from 10 min to ~3 h: ok, at risk and breached first responses.
            created_at=NOW - timedelta(minutes=10 + 17 * ((q * per_queue + n) % 10)),
            queue=f"queue-{q:05d}",
            initial_status="new",
            initial_priority=PRIORITIES[(q + n) % len(PRIORITIES)],
            subject="bench",
            events=(),
        )
        for q in range(queues)
        for n in range(per_queue)
    ]
    began = time.perf_counter()
    for ticket in tickets:
        tracker.update(ticket, NOW)  # names or folds each queue as the tracker meets it
    updates = (time.perf_counter() - began) * 1000
    # The replaced rule, on the raw queue names a tracker without labels counts under.
    unlabelled = Tracker(PolicySet())
    for ticket in tickets:
        unlabelled.update(ticket, NOW)
    old = CollectorRegistry()
    old.register(_EveryQueueEverSeen(unlabelled, {t.queue for t in tickets}))

    print(f"{queues:,} queues x {per_queue} open tickets, max_queues {max_queues}")
    print(f"{len(tickets):,} Tracker.update calls: {updates:.0f} ms")
    header = f"{'':28} {'series':>9} {'bytes':>12} {'median ms':>10} {'min ms':>8}"
    print(header)
    report("open, this rule", scrape(metrics.registry))
    report("open, the replaced rule", scrape(old))

    for ticket in tickets:
        done = TicketEvent(NOW - timedelta(minutes=1), EventKind.STATUS_CHANGE, "resolved")
        tracker.update(replace(ticket, events=(done,)), NOW)
        unlabelled.update(replace(ticket, events=(done,)), NOW)
    report("all resolved, this rule", scrape(metrics.registry))
    report("all resolved, replaced rule", scrape(old))


def report(what: str, figures: tuple[int, int, float, float]) -> None:
    series, size, median, fastest = figures
    print(f"{what:28} {series:>9,} {size:>12,} {median:>10.1f} {fastest:>8.1f}")


if __name__ == "__main__":
    main()

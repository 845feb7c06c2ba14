"""Prometheus metrics. Labels are bounded: clock, state, outcome, priority, queue, reason —
never a ticket id or a customer."""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Iterable
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from sla_monitor import __version__
from sla_monitor.engine import BadRowReason, Clock, ClockState
from sla_monitor.records import NewlyRecorded
from sla_monitor.tracker import PAUSED_TOO_LONG, Tracker

log = structlog.get_logger("sla_monitor.metrics")

MINUTE, HOUR = 60.0, 3600.0
# Dense around the 1 h first-response and 24 h resolution targets, so percentiles near the
# target are precise.
FIRST_RESPONSE_BUCKETS = (
    1 * MINUTE,
    5 * MINUTE,
    10 * MINUTE,
    15 * MINUTE,
    30 * MINUTE,
    45 * MINUTE,
    50 * MINUTE,
    55 * MINUTE,
    1 * HOUR,
    75 * MINUTE,
    90 * MINUTE,
    2 * HOUR,
    4 * HOUR,
    8 * HOUR,
    24 * HOUR,
)
RESOLUTION_BUCKETS = (
    1 * HOUR,
    2 * HOUR,
    4 * HOUR,
    8 * HOUR,
    12 * HOUR,
    16 * HOUR,
    18 * HOUR,
    20 * HOUR,
    22 * HOUR,
    24 * HOUR,
    30 * HOUR,
    36 * HOUR,
    48 * HOUR,
    72 * HOUR,
    168 * HOUR,
)
# Dense around the 1-4 h a next reply is usually promised in.
NEXT_REPLY_BUCKETS = (
    5 * MINUTE,
    15 * MINUTE,
    30 * MINUTE,
    45 * MINUTE,
    1 * HOUR,
    90 * MINUTE,
    2 * HOUR,
    3 * HOUR,
    4 * HOUR,
    6 * HOUR,
    8 * HOUR,
    12 * HOUR,
    24 * HOUR,
    48 * HOUR,
)
BAD_ROW_REASONS = tuple(BadRowReason)  # every one exported at 0 from the start
POLL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


OTHER_QUEUE = "other"  # the label of every queue beyond the first max_queues
# Every clock and state an open ticket's clock can be in (met is a stopped clock).
_OPEN_STATES = tuple(
    (clock.value, state.value)
    for clock in Clock
    for state in ClockState
    if state is not ClockState.MET
)


class _OpenTickets(Collector):
    """Open tickets per clock and state, and those paused too long (past their policy's
    max_pause), read from the tracker's counts at scrape time.

    Every state of every clock is exported, zeros included, for each priority and queue label
    that has at least one open ticket with a running or paused clock, so dashboards never show
    gaps when a state empties; a pair with no such ticket left disappears. The priorities are
    the tracker's current ones (a reload may add some). The tracker counts under the queue
    labels, so the work is bounded by the labels, whatever the number of queues.
    """

    def __init__(self, tracker: Tracker) -> None:
        self._tracker = tracker

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "sla_monitor_open_tickets",
            "Open tickets by SLA clock and its state.",
            labels=["clock", "state", "priority", "queue"],
        )
        too_long = GaugeMetricFamily(
            "sla_monitor_paused_too_long",
            "Open tickets paused longer than their policy's max_pause, now.",
            labels=["priority", "queue"],
        )
        priorities = self._tracker.policies.priorities
        counts = dict(self._tracker.counts)
        # The engine rejects a priority outside the configured set: never a label.
        open_pairs = {(key[2], key[3]) for key in counts if key[2] in priorities}
        # Samples built directly (add_metric's per-call zip is a third of the collect time
        # at (max_queues + 1) x priorities x 12 series).
        samples, name = family.samples, family.name
        for priority, queue in sorted(open_pairs):
            for clock, state in _OPEN_STATES:
                value = counts.get((clock, state, priority, queue), 0)
                labels = {"clock": clock, "state": state, "priority": priority, "queue": queue}
                samples.append(Sample(name, labels, value))
            value = counts.get((*PAUSED_TOO_LONG, priority, queue), 0)
            too_long.add_metric([priority, queue], value)
        yield family
        yield too_long


class Metrics:
    """Every metric the daemon exports, on its own registry.

    Queue labels are bounded: the first ``max_queues`` distinct queues seen keep their name,
    any later one is exported as ``other`` (see ``queue_label``). The tracker counts its open
    tickets under these labels, so it must not hold a ticket yet when Metrics is built.
    """

    def __init__(
        self,
        tracker: Tracker,
        registry: CollectorRegistry | None = None,
        *,
        max_queues: int = 200,
    ) -> None:
        if len(tracker):
            raise ValueError("Metrics must label queues before the tracker counts a ticket")
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.max_queues = max_queues
        self._queue_labels: dict[str, str] = {}
        self._named = 0
        tracker.queue_label = self.queue_label
        self.registry.register(_OpenTickets(tracker))
        self.queues_folded = Counter(
            "sla_monitor_queues_folded",
            f"Distinct queues exported as queue={OTHER_QUEUE!r}, beyond [daemon] max_queues.",
            registry=r,
        )
        self.tracked_tickets = Gauge(
            "sla_monitor_tracked_tickets", "Open tickets held in memory.", registry=r
        )
        self.sla_completed = Counter(
            "sla_monitor_sla_completed",
            "SLA clocks that stopped, by outcome (met or breached).",
            ["clock", "outcome", "priority", "queue"],
            registry=r,
        )
        self.breaches = Counter(
            "sla_monitor_breaches",
            "SLA clocks that crossed their target (counted once, when first seen).",
            ["clock", "priority", "queue"],
            registry=r,
        )
        self.first_response_seconds = Histogram(
            "sla_monitor_first_response_seconds",
            "Business seconds from creation to the first public staff reply.",
            ["priority", "queue"],
            buckets=FIRST_RESPONSE_BUCKETS,
            registry=r,
        )
        self.resolution_seconds = Histogram(
            "sla_monitor_resolution_seconds",
            "Business seconds from creation to resolution, paused and resolved time excluded.",
            ["priority", "queue"],
            buckets=RESOLUTION_BUCKETS,
            registry=r,
        )
        self.next_reply_seconds = Histogram(
            "sla_monitor_next_reply_seconds",
            "Business seconds from the oldest unanswered customer message to the next public "
            "staff reply, per answered message window.",
            ["priority", "queue"],
            buckets=NEXT_REPLY_BUCKETS,
            registry=r,
        )
        self.poll_duration = Histogram(
            "sla_monitor_poll_duration_seconds",
            "Duration of one poll cycle against the helpdesk.",
            buckets=POLL_BUCKETS,
            registry=r,
        )
        self.last_successful_poll = Gauge(
            "sla_monitor_last_successful_poll_timestamp_seconds",
            "Unix time of the last poll that completed.",
            registry=r,
        )
        self.source_up = Gauge(
            "sla_monitor_source_up",
            "1 when the last poll of the helpdesk succeeded.",
            registry=r,
        )
        self.bad_rows = Counter(
            "sla_monitor_bad_rows",
            "Ticket rows that could not be judged, by reason.",
            ["reason"],
            registry=r,
        )
        for reason in BAD_ROW_REASONS:
            self.bad_rows.labels(reason)  # exported at 0 so rate() and alerts work from start
        self.tickets_vanished = Counter(
            "sla_monitor_tickets_vanished",
            "Tracked tickets that left the open set with no change the watermark saw "
            "(deleted or merged away), found by reconciliation.",
            registry=r,
        )
        self.poll_errors = Counter(
            "sla_monitor_poll_errors", "Poll cycles that failed, by kind.", ["kind"], registry=r
        )
        self.escalations = Counter(
            "sla_monitor_escalations",
            "Escalation deliveries (triggers and resolves) by level, channel and result "
            "(delivered, or failed and retried).",
            ["level", "channel", "result"],
            registry=r,
        )
        self.customer_updates = Counter(
            "sla_monitor_customer_updates",
            "Progress update deliveries to customers by result (sent, failed and retried).",
            ["result"],
            registry=r,
        )
        for result in ("sent", "failed"):
            self.customer_updates.labels(result)
        self.pages_digested = Counter(
            "sla_monitor_pages_digested",
            "Triggers beyond [escalation] max_pages_per_minute, sent as one digest per channel "
            "and minute instead (labels: the configured channels).",
            ["channel"],
            registry=r,
        )
        self.rows_purged = Counter(
            "sla_monitor_rows_purged",
            "Rows of the daemon's own tables deleted by retention, by table.",
            ["table"],
            registry=r,
        )
        self.customers_at_risk = Gauge(
            "sla_monitor_customers_at_risk",
            "Customers and organizations at risk of churning under [churn], by reason "
            "(breaches, compliance, max_wait); recounted every [churn] interval.",
            ["reason"],
            registry=r,
        )
        self.outbox_pending = Gauge(
            "sla_monitor_outbox_pending", "Outbox messages not yet delivered.", registry=r
        )
        self.outbox_oldest_age = Gauge(
            "sla_monitor_outbox_oldest_pending_age_seconds",
            "Age of the oldest undelivered outbox message (0 when none).",
            registry=r,
        )
        self.channel_up = Gauge(
            "sla_monitor_channel_up",
            "1 while the channel's last delivery attempt succeeded, 0 while it fails "
            "(labels: the configured channels).",
            ["channel"],
            registry=r,
        )
        # The same per channel for /readyz: {"up": bool, "error": str | None}.
        self.channel_health: dict[str, dict[str, object]] = {}
        self.config_reload_successful = Gauge(
            "sla_monitor_config_last_reload_successful",
            "1 when the last configuration reload (SIGHUP) succeeded.",
            registry=r,
        )
        self.config_reload_successful.set(1)
        self.leader = Gauge(
            "sla_monitor_leader",
            "1 on the replica that leads (records and delivers), 0 on a standby; every replica "
            "exports the gauges of open tickets, so aggregate with max without(instance).",
            registry=r,
        )
        self.leader.set(1)  # a daemon without leadership (tests, one-shot commands) leads
        build = Gauge("sla_monitor_build_info", "Version of sla-monitor.", ["version"], registry=r)
        build.labels(__version__).set(1)

    def polled(self, seconds: float, tracked: int) -> None:
        """A poll of the helpdesk succeeded."""
        self.poll_duration.observe(seconds)
        self.last_successful_poll.set(time.time())
        self.source_up.set(1)
        self.tracked_tickets.set(tracked)

    def count_recorded(self, new: NewlyRecorded) -> None:
        """Moves the counters and histograms by what the store recorded for the first time."""
        queue = self.queue_label  # every queue label is bounded by max_queues
        breaches = Tally((b.clock, b.priority, queue(b.queue)) for b in new.breaches)
        for labels, count in breaches.items():
            self.breaches.labels(*labels).inc(count)
        completed = Tally(
            (c.clock, "met" if c.met else "breached", c.priority, queue(c.queue))
            for c in new.completions
        )
        for outcome, count in completed.items():
            self.sla_completed.labels(*outcome).inc(count)
        histograms = {
            Clock.FIRST_RESPONSE.value: self.first_response_seconds,
            Clock.RESOLUTION.value: self.resolution_seconds,
            Clock.NEXT_REPLY.value: self.next_reply_seconds,
        }
        children: dict[tuple[str, str, str], Any] = {}
        for completion in new.completions:
            histogram = histograms.get(completion.clock)
            if histogram is None:
                continue
            key = (completion.clock, completion.priority, queue(completion.queue))
            child = children.get(key)
            if child is None:
                child = children[key] = histogram.labels(*key[1:])
            child.observe(completion.elapsed_seconds)

    def queue_label(self, queue: str) -> str:
        """The label value of ``queue`` in every metric: its name for the first ``max_queues``
        distinct queues seen, ``other`` for any later one (counted and logged once)."""
        label = self._queue_labels.get(queue)
        if label is None:
            # Remembered for good, so a label never changes meaning while the process runs.
            if self._named < self.max_queues:
                label = queue
                self._named += 1
            else:
                label = OTHER_QUEUE
                self.queues_folded.inc()
                log.warning(
                    "queue_folded", queue=queue, label=OTHER_QUEUE, max_queues=self.max_queues
                )
            self._queue_labels[queue] = label
        return label

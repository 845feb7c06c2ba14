"""Metrics of the contract clocks: the next_reply histogram and the paused-too-long gauge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sla_monitor.engine import EventKind, Policy, PolicySet, Ticket, TicketEvent
from sla_monitor.metrics import Metrics
from sla_monitor.records import NewlyRecorded, RecordedCompletion
from sla_monitor.tracker import Tracker

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LIMITED = PolicySet(default=Policy(max_pause_seconds=3600, resolution_seconds=100 * 3600))


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    value = metrics.registry.get_sample_value(name, labels)
    return value


def paused_ticket(ticket_id: str, paused_at: float) -> Ticket:
    pending = TicketEvent(T0 + timedelta(minutes=paused_at), EventKind.STATUS_CHANGE, "pending")
    return Ticket(ticket_id, T0, "support", "new", "normal", events=(pending,))


def test_answered_next_reply_windows_are_observed_in_their_histogram() -> None:
    metrics = Metrics(Tracker(PolicySet()))
    window = RecordedCompletion("1", "next_reply", "k", True, 1800.0, "normal", "support")
    metrics.count_recorded(NewlyRecorded(breaches=[], completions=[window]))
    labels = {"priority": "normal", "queue": "support"}
    assert sample(metrics, "sla_monitor_next_reply_seconds_count", **labels) == 1
    assert sample(metrics, "sla_monitor_next_reply_seconds_bucket", le="1800.0", **labels) == 1
    assert sample(metrics, "sla_monitor_next_reply_seconds_bucket", le="900.0", **labels) == 0


def test_tickets_paused_past_max_pause_are_counted_until_they_leave_the_pause() -> None:
    tracker = Tracker(LIMITED)
    metrics = Metrics(tracker)
    labels = {"priority": "normal", "queue": "support"}
    tracker.update(paused_ticket("1", 10), T0 + timedelta(minutes=30))
    tracker.update(paused_ticket("2", 10), T0 + timedelta(minutes=30))
    assert sample(metrics, "sla_monitor_paused_too_long", **labels) == 0  # exported at zero
    # The limit's instant is a timer: re-judged then, the ticket counts.
    assert tracker.next_due() == T0 + timedelta(minutes=70)
    tracker.refresh_due(T0 + timedelta(minutes=70))
    assert sample(metrics, "sla_monitor_paused_too_long", **labels) == 2
    reopened = TicketEvent(T0 + timedelta(minutes=80), EventKind.STATUS_CHANGE, "open")
    resumed = paused_ticket("1", 10)
    resumed = Ticket("1", T0, "support", "new", "normal", events=(*resumed.events, reopened))
    tracker.update(resumed, T0 + timedelta(minutes=80))
    assert sample(metrics, "sla_monitor_paused_too_long", **labels) == 1

"""The exported metrics stay bounded: open-ticket series follow the open tickets, queue labels
are capped by max_queues, priorities are the configured ones (reloads included)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from sla_monitor.config import Settings
from sla_monitor.engine import Clock, ClockState, EventKind, PolicySet, Ticket, TicketEvent
from sla_monitor.metrics import OTHER_QUEUE, Metrics
from sla_monitor.tracker import Tracker

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=10)
STATES = len(Clock) * (len(ClockState) - 1)  # every clock x state but met, per pair


def ticket(ticket_id: str, queue: str, priority: str = "normal") -> Ticket:
    return Ticket(
        ticket_id=ticket_id,
        created_at=T0,
        queue=queue,
        initial_status="new",
        initial_priority=priority,
        subject=f"ticket {ticket_id}",
        events=(),
    )


def resolved(open_ticket: Ticket) -> Ticket:
    done = TicketEvent(T0 + timedelta(minutes=5), EventKind.STATUS_CHANGE, "resolved")
    return replace(open_ticket, events=(done,))


def open_series(metrics: Metrics) -> dict[tuple[str, str, str, str], float]:
    """sla_monitor_open_tickets as scraped: (clock, state, priority, queue) -> value."""
    [family] = [f for f in metrics.registry.collect() if f.name == "sla_monitor_open_tickets"]
    return {
        (s.labels["clock"], s.labels["state"], s.labels["priority"], s.labels["queue"]): s.value
        for s in family.samples
    }


def pairs(metrics: Metrics) -> set[tuple[str, str]]:
    return {(priority, queue) for _, _, priority, queue in open_series(metrics)}


def test_only_pairs_with_open_tickets_are_exported_with_all_their_zeros() -> None:
    tracker = Tracker(PolicySet())
    metrics = Metrics(tracker)
    support, billing = ticket("1", "support"), ticket("2", "billing", "high")
    tracker.update(support, NOW)
    tracker.update(billing, NOW)
    series = open_series(metrics)
    assert pairs(metrics) == {("normal", "support"), ("high", "billing")}
    assert len(series) == 2 * STATES  # not every configured priority x every queue
    assert series["first_response", "ok", "normal", "support"] == 1
    assert series["first_response", "breached", "normal", "support"] == 0  # no gap

    tracker.update(resolved(billing), NOW)
    assert pairs(metrics) == {("normal", "support")}  # billing's series disappear
    tracker.update(resolved(support), NOW)
    assert open_series(metrics) == {}


def test_ten_times_max_queues_stay_within_max_queues_plus_other() -> None:
    tracker = Tracker(PolicySet())
    metrics = Metrics(tracker, max_queues=10)
    tickets = [ticket(f"{q}-{n}", f"queue-{q}") for q in range(100) for n in range(3)]
    for each in tickets:
        tracker.update(each, NOW)
    series = open_series(metrics)
    queues = {queue for _, _, _, queue in series}
    assert queues == {f"queue-{q}" for q in range(10)} | {OTHER_QUEUE}
    assert len(series) == 11 * STATES
    assert series["first_response", "ok", "normal", OTHER_QUEUE] == 90 * 3
    assert sample_of(metrics, "sla_monitor_queues_folded_total") == 90

    for each in tickets:
        tracker.update(resolved(each), NOW)
    assert open_series(metrics) == {}  # nothing grows back when the tickets are gone


def test_a_queue_is_folded_once_for_good_and_logged_once() -> None:
    tracker = Tracker(PolicySet())
    metrics = Metrics(tracker, max_queues=2)
    with capture_logs() as logs:
        assert [metrics.queue_label(q) for q in ("a", "b", "c", "a", "c", "d")] == [
            "a",
            "b",
            OTHER_QUEUE,
            "a",
            OTHER_QUEUE,
            OTHER_QUEUE,
        ]
        tracker.update(ticket("1", "c"), NOW)
        assert pairs(metrics) == {("normal", OTHER_QUEUE)}
    folded = [entry for entry in logs if entry["event"] == "queue_folded"]
    assert [(e["queue"], e["log_level"]) for e in folded] == [("c", "warning"), ("d", "warning")]
    assert sample_of(metrics, "sla_monitor_queues_folded_total") == 2


def test_a_priority_added_to_the_policies_is_exported() -> None:
    tracker = Tracker(PolicySet(priorities=frozenset({"normal"})))
    metrics = Metrics(tracker)
    tracker.policies = PolicySet(priorities=frozenset({"normal", "vip"}))  # as Daemon.reload
    tracker.update(ticket("1", "support", "vip"), NOW)
    assert open_series(metrics)["first_response", "ok", "vip", "support"] == 1


def test_metrics_refuse_a_tracker_that_already_counts_under_raw_queue_names() -> None:
    tracker = Tracker(PolicySet())
    tracker.update(ticket("1", "support"), NOW)
    with pytest.raises(ValueError, match="before the tracker counts"):
        Metrics(tracker)


def test_max_queues_is_a_daemon_setting_of_at_least_one() -> None:
    assert Settings().daemon.max_queues == 100
    assert Settings.model_validate({"daemon": {"max_queues": 3}}).daemon.max_queues == 3
    with pytest.raises(ValidationError):
        Settings.model_validate({"daemon": {"max_queues": 0}})


def sample_of(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value

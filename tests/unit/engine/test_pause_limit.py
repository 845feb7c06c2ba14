"""The pause limit: a ticket paused longer than the policy's max_pause, and its escalation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sla_monitor.engine import (
    Clock,
    EventKind,
    Policy,
    PolicySet,
    Ticket,
    TicketEvent,
    evaluate_ticket,
)
from sla_monitor.engine.escalation import EscalationLevel, Trigger, active_escalations

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LIMITED = PolicySet(default=Policy(max_pause_seconds=3 * 3600, resolution_seconds=100 * 3600))
LEVEL = EscalationLevel("stuck", Trigger.PAUSE_LIMIT, ("alertmanager",))


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def ticket(*changes: tuple[float, str]) -> Ticket:
    events = tuple(TicketEvent(at(m), EventKind.STATUS_CHANGE, v) for m, v in changes)
    # Answered at once, so only the pause limit moves after the pause begins.
    events = (TicketEvent(at(1), EventKind.PUBLIC_REPLY), *events)
    return Ticket("3", T0, "support", "new", "normal", events=events)


PAUSED = ticket((60, "pending"), (120, "waiting"))  # one continuous pause from 60


def test_paused_since_and_limit_span_consecutive_paused_statuses():
    evaluation = evaluate_ticket(PAUSED, LIMITED, at(200))
    assert evaluation.paused_since == at(60)
    assert evaluation.pause_limit_at == at(240)
    assert not evaluation.paused_too_long
    assert evaluate_ticket(PAUSED, LIMITED, at(240)).paused_too_long


def test_the_timer_fires_when_the_limit_is_reached():
    # The update clock is paused too: nothing else would wake the daemon.
    assert evaluate_ticket(PAUSED, LIMITED, at(200)).next_transition == at(240)
    assert evaluate_ticket(PAUSED, LIMITED, at(240)).next_transition is None


def test_no_limit_without_max_pause_or_outside_a_pause():
    assert evaluate_ticket(PAUSED, PolicySet(), at(500)).pause_limit_at is None
    resumed = ticket((60, "pending"), (100, "open"))
    evaluation = evaluate_ticket(resumed, LIMITED, at(500))
    assert evaluation.paused_since is None and not evaluation.paused_too_long


def test_the_escalation_applies_while_paused_past_the_limit_and_resolves_on_leaving():
    assert active_escalations(evaluate_ticket(PAUSED, LIMITED, at(239)), (LEVEL,)) == []
    (escalation,) = active_escalations(evaluate_ticket(PAUSED, LIMITED, at(300)), (LEVEL,))
    assert escalation.status.clock is Clock.RESOLUTION  # first_response has stopped
    assert escalation.key == f"3/resolution/stuck/{at(60).isoformat()}"
    left = ticket((60, "pending"), (300, "open"))
    assert active_escalations(evaluate_ticket(left, LIMITED, at(301)), (LEVEL,)) == []


def test_each_pause_is_its_own_episode():
    twice = ticket((60, "pending"), (300, "open"), (310, "pending"))
    (escalation,) = active_escalations(evaluate_ticket(twice, LIMITED, at(600)), (LEVEL,))
    assert escalation.key.endswith(at(310).isoformat())


def test_no_alert_when_none_of_the_levels_clocks_still_runs():
    only_update = EscalationLevel(
        "stuck", Trigger.PAUSE_LIMIT, ("x",), frozenset({Clock.NEXT_REPLY})
    )
    assert active_escalations(evaluate_ticket(PAUSED, LIMITED, at(600)), (only_update,)) == []


def test_clock_levels_ignore_the_pause_limit_trigger():
    status = evaluate_ticket(PAUSED, LIMITED, at(600)).clocks[Clock.RESOLUTION]
    assert not LEVEL.applies(status)

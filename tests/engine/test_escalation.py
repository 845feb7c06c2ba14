"""Escalation levels: which are active for a ticket's clocks at an instant."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sla_monitor.engine import Clock, EventKind, PolicySet, evaluate_ticket
from sla_monitor.engine.escalation import EscalationLevel, Trigger, active_escalations
from tests.engine.test_clocks import POLICIES, at, ticket

TEAM = EscalationLevel("team", Trigger.AT_RISK, ("alertmanager",))
ONCALL = EscalationLevel("oncall", Trigger.BREACHED, ("alertmanager", "pagerduty"))
MANAGER = EscalationLevel("manager", Trigger.OVERDUE, ("slack",))
LEVELS = (TEAM, ONCALL, MANAGER)


def active(t, minutes: float, policies: PolicySet = POLICIES) -> set[str]:
    return {e.key for e in active_escalations(evaluate_ticket(t, policies, at(minutes)), LEVELS)}


@pytest.mark.parametrize(
    ("minutes", "expected"),
    [
        (30, set()),
        (45, {"42/first_response/team"}),
        (61, {"42/first_response/team", "42/first_response/oncall"}),
        (120, {"42/first_response/team", "42/first_response/oncall", "42/first_response/manager"}),
        (
            18 * 60,
            {
                "42/first_response/team",
                "42/first_response/oncall",
                "42/first_response/manager",
                "42/resolution/team",
            },
        ),
    ],
)
def test_levels_follow_the_clock_states(minutes: float, expected: set[str]) -> None:
    assert active(ticket(), minutes) == expected


def test_a_reply_clears_the_first_response_levels() -> None:
    t = ticket((70, EventKind.PUBLIC_REPLY, None))
    assert active(t, 65) == {"42/first_response/team", "42/first_response/oncall"}
    assert active(t, 75) == set()


def test_resolution_clears_every_level() -> None:
    t = ticket((25 * 60, EventKind.STATUS_CHANGE, "resolved"))
    assert active(t, 25 * 60 - 1) != set()
    assert active(t, 25 * 60 + 1) == set()


def test_a_breached_clock_stays_escalated_while_paused() -> None:
    t = ticket((70, EventKind.STATUS_CHANGE, "pending"))
    assert "42/first_response/oncall" in active(t, 200)


def test_update_clock_is_not_escalated_unless_asked() -> None:
    t = ticket((5, EventKind.PUBLIC_REPLY, None))
    assert active(t, 5 + 5 * 60) == set()
    level = EscalationLevel("remind", Trigger.BREACHED, ("slack",), frozenset({Clock.UPDATE}))
    evaluation = evaluate_ticket(t, POLICIES, at(5 + 5 * 60))
    assert [e.key for e in active_escalations(evaluation, (level,))] == ["42/update/remind"]


def test_overdue_instant_is_a_timer() -> None:
    evaluation = evaluate_ticket(ticket(), POLICIES, at(90))
    assert evaluation.clocks[Clock.FIRST_RESPONSE].overdue_at == at(120)
    assert evaluation.next_transition == at(120)
    assert evaluation.clocks[Clock.FIRST_RESPONSE].overdue_at - at(0) == timedelta(hours=2)

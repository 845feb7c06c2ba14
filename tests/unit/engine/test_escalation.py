"""Escalation levels: which are active for a ticket's clocks at an instant."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sla_monitor.engine import Clock, EventKind, PolicySet, evaluate_ticket
from sla_monitor.engine.escalation import EscalationLevel, Trigger, active_escalations
from tests.unit.engine.test_clocks import POLICIES, at, ticket

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
    [key] = [e.key for e in active_escalations(evaluation, (level,))]
    assert key == f"42/update/remind/{at(5).isoformat()}"  # the update window's start


REMIND = EscalationLevel("remind", Trigger.BREACHED, ("slack",), frozenset({Clock.UPDATE}))


def remind_keys(t, minutes: float) -> set[str]:
    evaluation = evaluate_ticket(t, POLICIES, at(minutes))
    return {e.key for e in active_escalations(evaluation, (REMIND,))}


def test_every_expired_update_window_reminds_with_its_own_key() -> None:
    # Windows of 4 h: the first expires at 240, a reply at 300 opens one expiring at 540.
    t = ticket((300, EventKind.PUBLIC_REPLY, None))
    first = remind_keys(t, 250)
    second = remind_keys(t, 550)
    assert len(first) == len(second) == 1
    assert first != second


def test_an_at_risk_alert_cleared_by_a_pause_fires_again_on_resume() -> None:
    # At risk from 45; waiting for the customer 50-70; open again, still at risk.
    t = ticket(
        (50, EventKind.STATUS_CHANGE, "pending"),
        (70, EventKind.STATUS_CHANGE, "open"),
    )
    before = active(t, 48)
    assert before == {"42/first_response/team"}
    assert active(t, 60) == set()  # paused: the customer holds the ball, the alert resolves
    after = active(t, 72)
    assert len(after) == 1 and after != before  # a new episode, a new key
    assert after == {f"42/first_response/team/{at(70).isoformat()}"}
    # The episode goes on into the breach (60 open minutes: at 80): the same key, no re-page.
    assert f"42/first_response/team/{at(70).isoformat()}" in active(t, 90)


def test_a_breach_stays_one_episode_through_pauses() -> None:
    t = ticket(
        (70, EventKind.STATUS_CHANGE, "pending"),
        (80, EventKind.STATUS_CHANGE, "open"),
    )
    oncall = {k for k in active(t, 65) if "oncall" in k}
    assert oncall == {"42/first_response/oncall"}
    assert {k for k in active(t, 75) if "oncall" in k} == oncall  # paused: stays
    assert {k for k in active(t, 90) if "oncall" in k} == oncall  # resumed: same episode


def test_a_reopened_breached_ticket_is_escalated_again() -> None:
    # Resolution breached at 24 h, resolved at 25 h, re-opened at 26 h: breached again.
    t = ticket(
        (10, EventKind.PUBLIC_REPLY, None),
        (25 * 60, EventKind.STATUS_CHANGE, "resolved"),
        (26 * 60, EventKind.STATUS_CHANGE, "open"),
    )
    first = {k for k in active(t, 24 * 60 + 30) if k.startswith("42/resolution/oncall")}
    assert first == {"42/resolution/oncall"}
    assert active(t, 25 * 60 + 30) == set()
    again = {k for k in active(t, 26 * 60 + 30) if k.startswith("42/resolution/oncall")}
    assert again == {f"42/resolution/oncall/{at(26 * 60).isoformat()}"}


def test_overdue_instant_is_a_timer() -> None:
    evaluation = evaluate_ticket(ticket(), POLICIES, at(90))
    assert evaluation.clocks[Clock.FIRST_RESPONSE].overdue_at == at(120)
    assert evaluation.next_transition == at(120)
    assert evaluation.clocks[Clock.FIRST_RESPONSE].overdue_at - at(0) == timedelta(hours=2)

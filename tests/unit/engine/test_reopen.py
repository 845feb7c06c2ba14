"""The reopen rule: a re-open resumes the resolution clock, or restarts it (a new cycle)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sla_monitor.engine import (
    Clock,
    ClockState,
    EventKind,
    Policy,
    PolicyRule,
    PolicySet,
    Ticket,
    TicketEvent,
    evaluate_ticket,
)
from sla_monitor.engine.policy import Reopen

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HOUR = 60.0
RESUME = PolicySet(default=Policy(resolution_seconds=2 * 3600))
RESTART = PolicySet(default=Policy(resolution_seconds=2 * 3600, reopen=Reopen.RESTART))


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def ticket(*changes: tuple[float, str]) -> Ticket:
    events = tuple(TicketEvent(at(m), EventKind.STATUS_CHANGE, v) for m, v in changes)
    return Ticket("5", T0, "support", "new", "normal", events=events)


# Resolved after 90 min, re-opened at 300, open since.
REOPENED = ticket((90, "resolved"), (300, "open"))


def resolution(policies: PolicySet, t: Ticket, minutes: float):
    evaluation = evaluate_ticket(t, policies, at(minutes))
    return (
        evaluation.clocks[Clock.RESOLUTION],
        [c for c in evaluation.completions if c.clock is Clock.RESOLUTION],
        [b for b in evaluation.breaches if b.clock is Clock.RESOLUTION],
    )


def test_resume_accumulates_across_reopens():
    status, _, breaches = resolution(RESUME, REOPENED, 340)
    assert status.started_at == T0
    assert status.elapsed_seconds == (90 + 40) * 60
    assert status.state is ClockState.BREACHED  # 90 + 30 min reached the 2 h target
    assert [(b.key, b.breached_at) for b in breaches] == [("", at(330))]


def test_restart_measures_a_new_cycle_from_the_reopen():
    status, completions, breaches = resolution(RESTART, REOPENED, 340)
    assert status.started_at == at(300)
    assert status.elapsed_seconds == 40 * 60
    assert status.state is ClockState.OK
    assert status.deadline == at(420)
    assert [(c.key, c.met) for c in completions] == [(at(90).isoformat(), True)]
    assert breaches == []


def test_restart_breaches_and_completes_per_cycle():
    t = ticket((150, "resolved"), (300, "open"), (330, "resolved"), (400, "open"))
    status, completions, breaches = resolution(RESTART, t, 600)
    assert [(c.key, c.met) for c in completions] == [
        (at(150).isoformat(), False),
        (at(330).isoformat(), True),
    ]
    # The first cycle keeps the key a resume policy gives it; later ones their start.
    assert [(b.key, b.breached_at) for b in breaches] == [
        ("", at(120)),
        (at(400).isoformat(), at(520)),
    ]
    assert status.started_at == at(400) and status.state is ClockState.BREACHED


def test_a_pause_within_a_cycle_is_not_a_restart():
    t = ticket((60, "pending"), (120, "open"))
    for policies in (RESUME, RESTART):
        status, _, _ = resolution(policies, t, 150)
        assert status.started_at == T0 and status.elapsed_seconds == 90 * 60


URGENT = Policy(name="urgent", resolution_seconds=1800)


def with_urgent(policies: PolicySet) -> PolicySet:
    urgent = replace(URGENT, reopen=policies.default.reopen)
    rule = PolicyRule(urgent, priorities=frozenset({"urgent"}))
    return PolicySet(rules=(rule,), default=policies.default)


def reprioritised(*events: tuple[float, EventKind, str]) -> Ticket:
    history = tuple(TicketEvent(at(m), kind, value) for m, kind, value in events)
    return Ticket("5", T0, "support", "new", "normal", events=history)


def test_restart_keeps_a_breach_under_an_earlier_priority_within_the_cycle():
    t = reprioritised(
        (90, EventKind.STATUS_CHANGE, "resolved"),
        (300, EventKind.STATUS_CHANGE, "open"),
        (340, EventKind.PRIORITY_CHANGE, "urgent"),
        (350, EventKind.PRIORITY_CHANGE, "normal"),
    )
    status, completions, _ = resolution(with_urgent(RESTART), t, 360)
    # Urgent's 30 minutes from the re-open at 300 ran out at 330: never withdrawn.
    assert status.state is ClockState.BREACHED and status.breached_at == at(330)
    assert [(c.key, c.met) for c in completions] == [(at(90).isoformat(), True)]


def test_a_later_breach_is_not_charged_to_an_earlier_resolution():
    t = reprioritised(
        (20, EventKind.STATUS_CHANGE, "resolved"),
        (40, EventKind.STATUS_CHANGE, "open"),
        (50, EventKind.PRIORITY_CHANGE, "urgent"),
        (70, EventKind.PRIORITY_CHANGE, "normal"),
    )
    status, completions, _ = resolution(with_urgent(RESUME), t, 80)
    assert status.breached_at == at(50)  # 20 + 10 open minutes under urgent's 30
    assert [(c.key, c.met) for c in completions] == [(at(20).isoformat(), True)]

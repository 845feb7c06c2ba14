"""The next-reply clock: windows from the oldest unanswered customer message to the reply."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sla_monitor.engine import (
    Clock,
    ClockState,
    EventKind,
    Policy,
    PolicySet,
    Ticket,
    TicketEvent,
    evaluate_ticket,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
POLICIES = PolicySet(default=Policy(next_reply_seconds=2 * 3600))
CUSTOMER = EventKind.CUSTOMER_MESSAGE
REPLY = EventKind.PUBLIC_REPLY
UPDATE = EventKind.AUTOMATIC_UPDATE
STATUS = EventKind.STATUS_CHANGE


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def ticket(*events: tuple[float, EventKind, str | None] | tuple[float, EventKind]) -> Ticket:
    return Ticket(
        "7",
        T0,
        "support",
        "open",
        "normal",
        events=tuple(TicketEvent(at(e[0]), e[1], e[2] if len(e) > 2 else None) for e in events),
    )


def evaluate(t: Ticket, minutes: float, policies: PolicySet = POLICIES):
    return evaluate_ticket(t, policies, at(minutes))


def windows(t: Ticket, minutes: float) -> list[tuple[str, bool, float]]:
    return [
        (c.key, c.met, c.elapsed_seconds / 60)
        for c in evaluate(t, minutes).completions
        if c.clock is Clock.NEXT_REPLY
    ]


def test_off_unless_the_policy_sets_a_target():
    t = ticket((10, CUSTOMER))
    assert Clock.NEXT_REPLY not in evaluate(t, 500, PolicySet()).clocks
    assert Clock.NEXT_REPLY in evaluate(t, 500).clocks


def test_no_customer_message_no_clock():
    assert Clock.NEXT_REPLY not in evaluate(ticket((10, REPLY)), 500).clocks


@pytest.mark.parametrize(
    ("minutes", "state"),
    [(11, ClockState.OK), (100, ClockState.AT_RISK), (130, ClockState.BREACHED)],
)
def test_an_unanswered_message_runs_from_its_instant(minutes, state):
    status = evaluate(ticket((10, CUSTOMER)), minutes).clocks[Clock.NEXT_REPLY]
    assert status.state is state
    assert status.started_at == at(10)
    assert status.deadline == at(130)
    assert status.at_risk_at == at(100)


def test_each_answered_message_closes_one_window_with_its_start_as_key():
    t = ticket((10, CUSTOMER), (40, REPLY), (200, CUSTOMER), (400, REPLY), (550, CUSTOMER))
    assert windows(t, 600) == [(at(10).isoformat(), True, 30), (at(200).isoformat(), False, 200)]
    breaches = [b for b in evaluate(t, 600).breaches if b.clock is Clock.NEXT_REPLY]
    assert [(b.key, b.breached_at) for b in breaches] == [(at(200).isoformat(), at(320))]
    running = evaluate(t, 600).clocks[Clock.NEXT_REPLY]
    assert running.started_at == at(550) and running.state is ClockState.OK


def test_several_messages_before_one_reply_are_one_window_from_the_oldest():
    t = ticket((10, CUSTOMER), (20, CUSTOMER), (30, CUSTOMER), (60, REPLY))
    assert windows(t, 100) == [(at(10).isoformat(), True, 50)]
    assert evaluate(t, 100).clocks[Clock.NEXT_REPLY].state is ClockState.MET


def test_messages_at_one_instant_are_one_window():
    t = ticket((10, CUSTOMER), (10, CUSTOMER), (20, REPLY))
    assert windows(t, 100) == [(at(10).isoformat(), True, 10)]


def test_a_reply_answers_a_message_at_its_own_instant():
    t = ticket((10, REPLY), (10, CUSTOMER), (30, CUSTOMER))
    assert windows(t, 100) == [(at(10).isoformat(), True, 0)]
    assert evaluate(t, 100).clocks[Clock.NEXT_REPLY].started_at == at(30)


def test_automatic_updates_and_notes_do_not_answer():
    t = ticket((10, CUSTOMER), (20, UPDATE), (30, EventKind.INTERNAL_NOTE))
    status = evaluate(t, 60).clocks[Clock.NEXT_REPLY]
    assert status.started_at == at(10) and not status.stopped


def test_pending_pauses_the_window():
    t = ticket((10, CUSTOMER), (20, STATUS, "pending"), (80, STATUS, "open"))
    status = evaluate(t, 140).clocks[Clock.NEXT_REPLY]
    assert status.elapsed_seconds == 70 * 60  # 10-20 and 80-140
    assert evaluate(t, 50).clocks[Clock.NEXT_REPLY].state is ClockState.PAUSED


def test_resolution_ends_a_window_without_a_completion_but_keeps_its_breach():
    t = ticket((10, CUSTOMER), (200, STATUS, "resolved"))
    evaluation = evaluate(t, 300)
    assert not [c for c in evaluation.completions if c.clock is Clock.NEXT_REPLY]
    assert [b.breached_at for b in evaluation.breaches if b.clock is Clock.NEXT_REPLY] == [at(130)]
    assert evaluation.clocks[Clock.NEXT_REPLY].state is ClockState.BREACHED
    # Within target, the window simply disappears: nothing was owed any more.
    quiet = evaluate(ticket((10, CUSTOMER), (30, STATUS, "resolved")), 300)
    assert Clock.NEXT_REPLY not in quiet.clocks
    assert not [c for c in quiet.completions if c.clock is Clock.NEXT_REPLY]


def test_a_message_after_a_reopen_opens_a_new_window():
    t = ticket(
        (10, CUSTOMER), (20, STATUS, "resolved"), (50, STATUS, "open"), (50, CUSTOMER), (70, REPLY)
    )
    assert windows(t, 100) == [(at(50).isoformat(), True, 20)]


def test_next_transition_includes_the_window_deadline():
    evaluation = evaluate(ticket((10, CUSTOMER), (11, REPLY), (100, CUSTOMER)), 105)
    # first_response met at 11; update window from 11 runs to 251; next reply at-risk at 190
    assert evaluation.next_transition == at(190)


def test_an_escalation_on_next_reply_is_keyed_per_window():
    from sla_monitor.engine.escalation import EscalationLevel, Trigger, active_escalations

    level = EscalationLevel("oncall", Trigger.BREACHED, ("x",), frozenset({Clock.NEXT_REPLY}))
    t = ticket((10, CUSTOMER), (300, REPLY), (400, CUSTOMER))
    assert active_escalations(evaluate(t, 450), (level,)) == []
    (escalation,) = active_escalations(evaluate(t, 600), (level,))
    assert escalation.key == f"7/next_reply/oncall/{at(400).isoformat()}"

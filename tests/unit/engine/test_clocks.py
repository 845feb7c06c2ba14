"""The clock rules of docs/semantics.md, one behaviour per test, with an injected now."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from sla_monitor.engine import (
    Clock,
    ClockState,
    ContinuousCalendar,
    EventKind,
    Policy,
    PolicyRule,
    PolicySet,
    StatusCategory,
    Ticket,
    TicketEvent,
    evaluate_ticket,
)
from sla_monitor.engine.business_calendar import BusinessCalendar, parse_hours
from sla_monitor.engine.clocks import TicketError

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
POLICIES = PolicySet()


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def ticket(
    *events: tuple[float, EventKind, str | None], status: str = "new", priority: str = "normal"
) -> Ticket:
    return Ticket(
        ticket_id="42",
        created_at=T0,
        queue="support",
        initial_status=status,
        initial_priority=priority,
        events=tuple(TicketEvent(at(m), kind, value) for m, kind, value in events),
    )


REPLY = EventKind.PUBLIC_REPLY
NOTE = EventKind.INTERNAL_NOTE
CUSTOMER = EventKind.CUSTOMER_MESSAGE
STATUS = EventKind.STATUS_CHANGE
PRIORITY = EventKind.PRIORITY_CHANGE


def clock(t: Ticket, which: Clock, minutes: float, policies: PolicySet = POLICIES):
    return evaluate_ticket(t, policies, at(minutes)).clocks[which]


# --- first response ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minutes", "state"),
    [
        (0, ClockState.OK),
        (44, ClockState.OK),
        (45, ClockState.AT_RISK),
        (59.99, ClockState.AT_RISK),
        (60, ClockState.BREACHED),  # still running at its deadline instant
        (600, ClockState.BREACHED),
    ],
)
def test_unanswered_first_response_moves_ok_at_risk_breached(minutes, state):
    assert clock(ticket(), Clock.FIRST_RESPONSE, minutes).state is state


def test_first_response_deadline_and_remaining_are_from_creation():
    status = clock(ticket(), Clock.FIRST_RESPONSE, 20)
    assert status.deadline == at(60)
    assert status.at_risk_at == at(45)
    assert status.remaining_seconds == pytest.approx(40 * 60)
    assert status.running


def test_public_staff_reply_within_target_meets_first_response():
    status = clock(ticket((30, REPLY, None)), Clock.FIRST_RESPONSE, 300)
    assert status.state is ClockState.MET
    assert status.stopped_at == at(30)
    assert status.elapsed_seconds == 30 * 60
    assert status.deadline is None


def test_late_reply_stops_first_response_as_breached_at_the_deadline():
    status = clock(ticket((90, REPLY, None)), Clock.FIRST_RESPONSE, 300)
    assert status.state is ClockState.BREACHED
    assert status.breached_at == at(60)
    assert status.stopped_at == at(90)


def test_reply_exactly_at_target_is_met():
    assert clock(ticket((60, REPLY, None)), Clock.FIRST_RESPONSE, 61).state is ClockState.MET


@pytest.mark.parametrize("kind", [NOTE, CUSTOMER])
def test_internal_notes_and_customer_messages_do_not_answer(kind):
    status = clock(ticket((10, kind, None)), Clock.FIRST_RESPONSE, 70)
    assert status.state is ClockState.BREACHED
    assert status.stopped_at is None


def test_pause_status_stops_first_response_and_excludes_the_paused_time():
    t = ticket((30, STATUS, "pending"), (90, STATUS, "open"))
    paused = clock(t, Clock.FIRST_RESPONSE, 80)
    assert paused.state is ClockState.PAUSED
    assert paused.deadline is None
    assert paused.elapsed_seconds == 30 * 60
    resumed = clock(t, Clock.FIRST_RESPONSE, 100)
    assert resumed.state is ClockState.OK
    assert resumed.elapsed_seconds == 40 * 60
    assert resumed.deadline == at(120)


def test_breached_clock_stays_breached_while_paused():
    t = ticket((70, STATUS, "pending"))
    assert clock(t, Clock.FIRST_RESPONSE, 200).state is ClockState.BREACHED


def test_first_response_of_a_ticket_resolved_without_reply_is_not_applicable():
    for t in (
        ticket((20, STATUS, "resolved")),
        ticket((20, STATUS, "resolved"), (30, REPLY, None)),
    ):
        evaluation = evaluate_ticket(t, POLICIES, at(300))
        assert Clock.FIRST_RESPONSE not in evaluation.clocks  # not met, not in the gauges
        assert [c for c in evaluation.completions if c.clock is Clock.FIRST_RESPONSE] == []
        assert [b for b in evaluation.breaches if b.clock is Clock.FIRST_RESPONSE] == []
        assert evaluation.clocks[Clock.RESOLUTION].state is ClockState.MET


def test_reopened_after_resolving_without_reply_has_no_first_response_clock():
    t = ticket((20, STATUS, "resolved"), (40, STATUS, "open"))
    assert Clock.FIRST_RESPONSE not in evaluate_ticket(t, POLICIES, at(300)).clocks


def test_resolved_without_reply_after_breaching_keeps_the_breach_only():
    evaluation = evaluate_ticket(ticket((90, STATUS, "resolved")), POLICIES, at(300))
    assert [c for c in evaluation.completions if c.clock is Clock.FIRST_RESPONSE] == []
    assert [
        (b.key, b.breached_at) for b in evaluation.breaches if b.clock is Clock.FIRST_RESPONSE
    ] == [("", at(60))]
    status = evaluation.clocks[Clock.FIRST_RESPONSE]
    assert status.state is ClockState.BREACHED
    assert status.stopped_at == at(90)  # stopped: no gauge, no escalation


def test_a_reply_as_the_ticket_is_resolved_is_a_first_response():
    evaluation = evaluate_ticket(
        ticket((20, REPLY, None), (20, STATUS, "resolved")), POLICIES, at(30)
    )
    assert [
        (c.met, c.elapsed_seconds)
        for c in evaluation.completions
        if c.clock is Clock.FIRST_RESPONSE
    ] == [(True, 20 * 60)]


def test_events_after_now_are_ignored():
    t = ticket((30, REPLY, None))
    assert clock(t, Clock.FIRST_RESPONSE, 10).state is ClockState.OK


# --- resolution ----------------------------------------------------------------------------


def test_resolution_is_measured_to_entering_resolved():
    t = ticket((10, REPLY, None), (600, STATUS, "resolved"))
    status = clock(t, Clock.RESOLUTION, 2000)
    assert status.state is ClockState.MET
    assert status.elapsed_seconds == 600 * 60
    assert status.stopped_at == at(600)


def test_resolution_breaches_after_24_hours():
    assert clock(ticket((10, REPLY, None)), Clock.RESOLUTION, 24 * 60 + 1).state is (
        ClockState.BREACHED
    )
    assert clock(ticket((10, REPLY, None)), Clock.RESOLUTION, 18 * 60).state is (ClockState.AT_RISK)


def test_time_resolved_before_reopen_and_paused_time_do_not_count():
    t = ticket(
        (60, STATUS, "pending"),
        (120, STATUS, "open"),  # 60 min paused
        (300, STATUS, "resolved"),
        (500, STATUS, "open"),  # 200 min resolved
    )
    status = clock(t, Clock.RESOLUTION, 600)
    assert status.elapsed_seconds == (600 - 60 - 200) * 60
    assert status.state is ClockState.OK
    assert status.deadline == at(24 * 60 + 60 + 200)


def test_reopen_records_each_resolution_as_its_own_completion():
    t = ticket((100, STATUS, "resolved"), (200, STATUS, "open"), (300, STATUS, "closed"))
    evaluation = evaluate_ticket(t, POLICIES, at(400))
    resolutions = [c for c in evaluation.completions if c.clock is Clock.RESOLUTION]
    assert [(c.stopped_at, c.elapsed_seconds, c.met) for c in resolutions] == [
        (at(100), 100 * 60, True),
        (at(300), 200 * 60, True),
    ]
    assert len({c.key for c in resolutions}) == 2


def test_breach_is_never_withdrawn_by_resolving():
    t = ticket((25 * 60, STATUS, "resolved"))
    evaluation = evaluate_ticket(t, POLICIES, at(26 * 60))
    assert evaluation.clocks[Clock.RESOLUTION].state is ClockState.BREACHED
    assert [b.breached_at for b in evaluation.breaches if b.clock is Clock.RESOLUTION] == [
        at(24 * 60)
    ]


# --- update (keep in loop) -----------------------------------------------------------------


def test_update_clock_runs_from_the_last_public_reply():
    t = ticket((30, REPLY, None), (200, REPLY, None))
    status = clock(t, Clock.UPDATE, 300)
    assert status.started_at == at(200)
    assert status.elapsed_seconds == 100 * 60
    assert status.deadline == at(200 + 240)


def test_update_clock_owes_news_after_the_interval():
    t = ticket((30, REPLY, None))
    assert clock(t, Clock.UPDATE, 30 + 241).state is ClockState.BREACHED
    assert clock(t, Clock.UPDATE, 30 + 239).state is ClockState.AT_RISK


def test_each_reply_closes_an_update_window():
    t = ticket((30, REPLY, None), (400, REPLY, None))
    evaluation = evaluate_ticket(t, POLICIES, at(500))
    windows = [c for c in evaluation.completions if c.clock is Clock.UPDATE]
    assert [(c.key, c.met) for c in windows] == [
        (T0.isoformat(), True),
        (at(30).isoformat(), False),
    ]
    assert [b.key for b in evaluation.breaches if b.clock is Clock.UPDATE] == [at(30).isoformat()]


def test_replies_stamped_alike_close_one_update_window_and_open_one():
    # The window from the reply at 30 ran out at 270; two replies come at the same second.
    t = ticket((30, REPLY, None), (400, REPLY, None), (400, EventKind.AUTOMATIC_UPDATE, None))
    evaluation = evaluate_ticket(t, POLICIES, at(500))
    windows = [c for c in evaluation.completions if c.clock is Clock.UPDATE]
    assert [(c.key, c.met, c.stopped_at) for c in windows] == [
        (T0.isoformat(), True, at(30)),
        (at(30).isoformat(), False, at(400)),
    ]
    assert [(b.key, b.breached_at) for b in evaluation.breaches if b.clock is Clock.UPDATE] == [
        (at(30).isoformat(), at(270))
    ]
    running = evaluation.clocks[Clock.UPDATE]
    assert running.started_at == at(400)
    assert running.running and running.state is ClockState.OK


def test_update_clock_stops_when_resolved():
    t = ticket((30, REPLY, None), (60, STATUS, "resolved"))
    status = clock(t, Clock.UPDATE, 1000)
    assert status.state is ClockState.MET
    assert not status.running


# --- priority changes and policy selection --------------------------------------------------


URGENT = Policy(name="urgent", first_response_seconds=15 * 60, resolution_seconds=4 * 3600)
LOW = Policy(name="low", first_response_seconds=8 * 3600, resolution_seconds=72 * 3600)
TIERED = PolicySet(
    rules=(
        PolicyRule(URGENT, priorities=frozenset({"urgent"})),
        PolicyRule(LOW, priorities=frozenset({"low"}), queues=frozenset({"support"})),
    )
)


def test_policy_is_chosen_by_priority_and_queue():
    assert evaluate_ticket(ticket(priority="urgent"), TIERED, at(0)).policy == "urgent"
    assert evaluate_ticket(ticket(priority="low"), TIERED, at(0)).policy == "low"
    other_queue = Ticket("1", T0, "billing", "new", "low")
    assert evaluate_ticket(other_queue, TIERED, at(0)).policy == "default"


def test_priority_raise_reapplies_policy_from_creation():
    t = ticket((10, PRIORITY, "urgent"), priority="normal")
    status = clock(t, Clock.FIRST_RESPONSE, 12, TIERED)
    assert status.target_seconds == 15 * 60
    assert status.deadline == at(15)
    assert status.state is ClockState.AT_RISK


def test_priority_lowered_after_breach_stays_breached():
    t = ticket((20, PRIORITY, "low"), priority="urgent")
    status = clock(t, Clock.FIRST_RESPONSE, 30, TIERED)
    assert status.target_seconds == 8 * 3600
    assert status.state is ClockState.BREACHED
    assert status.breached_at == at(15)


def test_stopped_clock_is_judged_by_the_policy_in_force_when_it_stopped():
    t = ticket((30, REPLY, None), (40, PRIORITY, "urgent"))
    assert clock(t, Clock.FIRST_RESPONSE, 50, TIERED).state is ClockState.MET


def test_disabled_clock_is_absent():
    policies = PolicySet(default=Policy(update_interval_seconds=None))
    assert Clock.UPDATE not in evaluate_ticket(ticket(), policies, at(5)).clocks


def test_custom_at_risk_ratio():
    policies = PolicySet(default=Policy(at_risk_ratio=0.5))
    assert clock(ticket(), Clock.FIRST_RESPONSE, 31, policies).state is ClockState.AT_RISK
    assert clock(ticket(), Clock.FIRST_RESPONSE, 29, policies).state is ClockState.OK


def test_next_transition_is_the_earliest_future_at_risk_or_deadline():
    evaluation = evaluate_ticket(ticket(), POLICIES, at(10))
    assert evaluation.next_transition == at(45)
    evaluation = evaluate_ticket(ticket(), POLICIES, at(50))
    assert evaluation.next_transition == at(60)
    breached = evaluate_ticket(ticket(), POLICIES, evaluation.next_transition)
    assert breached.clocks[Clock.FIRST_RESPONSE].state is ClockState.BREACHED
    assert breached.clocks[Clock.FIRST_RESPONSE].breached_at == at(60)


def test_category_reflects_current_status():
    t = ticket((5, STATUS, "pending"))
    assert evaluate_ticket(t, POLICIES, at(6)).category is StatusCategory.PAUSED


# --- malformed tickets ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (Ticket("1", T0.replace(tzinfo=None), "q", "new", "normal"), "naive_timestamp"),
        (Ticket("1", T0, "q", "bogus", "normal"), "unknown_status"),
        (Ticket("1", T0, "q", "new", "p0"), "unknown_priority"),
        (ticket((-5, REPLY, None)), "event_before_creation"),
        (ticket((5, STATUS, "limbo")), "unknown_status"),
        (ticket((5, PRIORITY, "p9")), "unknown_priority"),
        (
            Ticket(
                "1",
                T0,
                "q",
                "new",
                "normal",
                events=(TicketEvent(at(5).replace(tzinfo=None), REPLY),),
            ),
            "naive_timestamp",
        ),
    ],
)
def test_malformed_tickets_raise_a_reasoned_error(bad, reason):
    with pytest.raises(TicketError) as excinfo:
        evaluate_ticket(bad, POLICIES, at(10))
    assert excinfo.value.reason == reason


def test_an_automatic_update_restarts_the_update_window_but_is_no_response():
    t = ticket((300, EventKind.AUTOMATIC_UPDATE, None))
    evaluation = evaluate_ticket(t, POLICIES, at(320))
    assert evaluation.clocks[Clock.UPDATE].started_at == at(300)
    assert evaluation.clocks[Clock.UPDATE].state is ClockState.OK
    assert evaluation.clocks[Clock.FIRST_RESPONSE].state is ClockState.BREACHED
    assert evaluation.clocks[Clock.FIRST_RESPONSE].stopped_at is None


OFFICE_HOURS = BusinessCalendar(
    "office", "UTC", {d: [parse_hours("09:00-17:00")] for d in range(5)}
)
EIGHT_OFFICE_HOURS = PolicySet(
    default=Policy(first_response_seconds=8 * 3600, calendar=OFFICE_HOURS)
)
FRIDAY_9 = datetime(2026, 3, 6, 9, 0, tzinfo=UTC)


def friday_ticket(*events: TicketEvent) -> Ticket:
    return Ticket("7", FRIDAY_9, "support", "new", "normal", events=events)


def test_a_deadline_at_closing_time_is_breached_at_closing_time():
    """Due Friday 17:00 and still running then: breached at 17:00, not on Monday morning."""
    friday_17 = FRIDAY_9.replace(hour=17)
    before = evaluate_ticket(friday_ticket(), EIGHT_OFFICE_HOURS, friday_17 - timedelta(hours=1))
    assert before.clocks[Clock.FIRST_RESPONSE].state is ClockState.AT_RISK
    assert before.clocks[Clock.FIRST_RESPONSE].deadline == friday_17
    assert before.next_transition == friday_17
    for now in (friday_17, friday_17 + timedelta(hours=1), datetime(2026, 3, 7, 12, tzinfo=UTC)):
        status = evaluate_ticket(friday_ticket(), EIGHT_OFFICE_HOURS, now).clocks[
            Clock.FIRST_RESPONSE
        ]
        assert status.state is ClockState.BREACHED
        assert status.breached_at == status.deadline == friday_17
        assert status.breach_due is None


def test_a_reply_at_the_deadline_meets_it_and_one_after_it_does_not():
    friday_17 = FRIDAY_9.replace(hour=17)
    on_time = friday_ticket(TicketEvent(friday_17, REPLY))
    late = friday_ticket(TicketEvent(datetime(2026, 3, 7, 10, tzinfo=UTC), REPLY))  # Saturday
    monday = datetime(2026, 3, 9, 12, tzinfo=UTC)
    assert evaluate_ticket(on_time, EIGHT_OFFICE_HOURS, monday).clocks[
        Clock.FIRST_RESPONSE
    ].state is (ClockState.MET)
    status = evaluate_ticket(late, EIGHT_OFFICE_HOURS, monday).clocks[Clock.FIRST_RESPONSE]
    # No business second passed after 17:00, but the clock was still running at its deadline.
    assert status.elapsed_seconds == 8 * 3600
    assert status.state is ClockState.BREACHED
    assert status.breached_at == friday_17


# --- exact thresholds --------------------------------------------------------------------


@pytest.mark.parametrize("calendar", [ContinuousCalendar(), OFFICE_HOURS], ids=["24x7", "office"])
def test_at_risk_and_overdue_hold_exactly_at_their_reported_instants(calendar):
    """Elapsed time and thresholds are whole microseconds: no float rounding judges the
    reported instant as the state before it (0.55 and 1.1 are not exact binary fractions)."""
    policies = PolicySet(
        default=Policy(
            first_response_seconds=3600,
            resolution_seconds=None,
            update_interval_seconds=None,
            at_risk_ratio=0.55,
            overdue_ratio=1.1,
            calendar=calendar,
        )
    )
    wrong = []
    for step in range(1, 1500):
        target = step * 7.3  # seconds, with fractions
        policies = PolicySet(default=replace(policies.default, first_response_seconds=target))
        first = evaluate_ticket(ticket(), policies, T0).clocks[Clock.FIRST_RESPONSE]
        assert first.at_risk_at is not None and first.overdue_at is not None
        at_risk = evaluate_ticket(ticket(), policies, first.at_risk_at)
        if at_risk.clocks[Clock.FIRST_RESPONSE].state is not ClockState.AT_RISK:
            wrong.append(("at_risk", target))
        if at_risk.next_transition != first.deadline:
            wrong.append(("timer after at_risk", target))
        before = evaluate_ticket(ticket(), policies, first.at_risk_at - timedelta(microseconds=1))
        if before.clocks[Clock.FIRST_RESPONSE].state is not ClockState.OK:
            wrong.append(("ok before at_risk", target))
        just_before = evaluate_ticket(
            ticket(), policies, first.overdue_at - timedelta(microseconds=1)
        )
        if just_before.next_transition != first.overdue_at:
            wrong.append(("timer before overdue", target))
        overdue = evaluate_ticket(ticket(), policies, first.overdue_at)
        if not overdue.clocks[Clock.FIRST_RESPONSE].overdue:
            wrong.append(("overdue", target))
    assert wrong == []


# --- absurd timestamps ----------------------------------------------------------------------


def reason(t: Ticket, now: datetime, policies: PolicySet = POLICIES) -> str:
    with pytest.raises(TicketError) as excinfo:
        evaluate_ticket(t, policies, now)
    return excinfo.value.reason


def test_a_ticket_created_after_now_beyond_the_tolerance_is_a_bad_row():
    assert reason(ticket(), T0 - timedelta(seconds=61)) == "created_in_future"
    assert reason(replace(ticket(), created_at=datetime(9999, 6, 1, tzinfo=UTC)), T0) == (
        "created_in_future"
    )
    # Within the tolerance (two hosts' clocks): judged from creation, never due before it.
    status = clock(ticket(), Clock.FIRST_RESPONSE, -59 / 60)
    assert status.state is ClockState.OK
    assert status.deadline == at(60)
    assert status.at_risk_at == at(45)


INFINITY = datetime.max.replace(tzinfo=UTC)


@pytest.mark.parametrize(
    "bad",
    [
        replace(ticket(), created_at=INFINITY),
        replace(ticket(), created_at=datetime.min.replace(tzinfo=UTC)),
        replace(ticket(), created_at=datetime.max),  # as asyncpg returns it: no time zone
        Ticket("1", T0, "q", "new", "normal", events=(TicketEvent(INFINITY, REPLY),)),
    ],
    ids=["created_infinity", "created_minus_infinity", "created_naive_max", "event_infinity"],
)
def test_infinite_timestamps_say_so(bad):
    assert reason(bad, at(10)) == "infinite_timestamp"


def test_out_of_range_instants_are_ticket_errors_not_overflows():
    assert reason(replace(ticket(), created_at=datetime(1, 1, 2, tzinfo=UTC)), T0) == (
        "timestamp_out_of_range"
    )
    assert reason(ticket(), datetime(9999, 12, 31, tzinfo=UTC)) == "timestamp_out_of_range"
    endless = PolicySet(default=Policy(resolution_seconds=1e12, calendar=OFFICE_HOURS))
    assert reason(ticket(), at(10), endless) == "timestamp_out_of_range"


@pytest.mark.parametrize("calendar", [ContinuousCalendar(), OFFICE_HOURS], ids=["24x7", "office"])
def test_a_reply_dated_in_year_9999_is_after_now_and_ignored(calendar):
    policies = PolicySet(default=Policy(calendar=calendar))
    far = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
    t = replace(ticket(), events=(TicketEvent(far, REPLY), TicketEvent(far, STATUS, "resolved")))
    status = evaluate_ticket(t, policies, at(10)).clocks[Clock.FIRST_RESPONSE]
    assert status.running
    assert status.stopped_at is None

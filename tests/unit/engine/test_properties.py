"""Properties of evaluate_ticket on random ticket histories: it judges or rejects every input
with a TicketError, its results agree with each other, and its cost grows with the history,
not exponentially."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sla_monitor.engine import (
    Clock,
    ClockState,
    ContinuousCalendar,
    EventKind,
    Policy,
    PolicyRule,
    PolicySet,
    Ticket,
    TicketEvent,
    evaluate_ticket,
)
from sla_monitor.engine.business_calendar import BusinessCalendar, parse_hours
from sla_monitor.engine.clocks import TicketError, _sticky_breaches, _Times
from sla_monitor.engine.policy import Reopen

T0 = datetime(2026, 3, 27, 15, 0, tzinfo=UTC)  # a Friday afternoon before Berlin's DST change
OFFICE = BusinessCalendar(
    "office",
    "Europe/Berlin",
    {day: [parse_hours("09:00-12:00"), parse_hours("13:00-17:00")] for day in range(5)},
    country="DE",
)
STATUSES = ["new", "open", "pending", "waiting", "resolved", "closed"]
PRIORITIES = ["urgent", "high", "normal", "low"]


def policy_set(calendar: object, at_risk: float, overdue: float) -> PolicySet:
    def policy(name: str, first: float, resolution: float, update: float | None) -> Policy:
        return Policy(
            name=name,
            first_response_seconds=first,
            resolution_seconds=resolution,
            update_interval_seconds=update,
            at_risk_ratio=at_risk,
            overdue_ratio=overdue,
            calendar=calendar,  # type: ignore[arg-type]
        )

    return PolicySet(
        rules=(
            PolicyRule(policy("urgent", 900, 4 * 3600, 3600), priorities=frozenset({"urgent"})),
            PolicyRule(policy("high", 1800, 8 * 3600, 7200), priorities=frozenset({"high"})),
            PolicyRule(policy("low", 8 * 3600, 72 * 3600, None), priorities=frozenset({"low"})),
        ),
        default=policy("default", 3600, 24 * 3600, 4 * 3600),
    )


POLICY_SETS = st.builds(
    policy_set,
    st.sampled_from([ContinuousCalendar(), OFFICE]),
    st.sampled_from([0.5, 0.55, 0.75, 0.9]),
    st.sampled_from([1.1, 1.5, 2.0]),
)

# Instants that sources have given: datetime.max/min (PostgreSQL +/-infinity through asyncpg),
# the year 9999, and times far from the ticket.
EXTREMES = [
    datetime.max.replace(tzinfo=UTC),
    datetime.min.replace(tzinfo=UTC),
    datetime.max.replace(tzinfo=timezone(timedelta(hours=-5))),
    datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))),  # past datetime.max in UTC
    datetime(9999, 6, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, tzinfo=UTC),
    datetime(1, 1, 2, tzinfo=UTC),
]


@st.composite
def events(draw: st.DrawFn) -> TicketEvent:
    kind = draw(st.sampled_from(list(EventKind)))
    value = None
    if kind is EventKind.STATUS_CHANGE:
        value = draw(st.sampled_from(STATUSES))
    elif kind is EventKind.PRIORITY_CHANGE:
        value = draw(st.sampled_from(PRIORITIES))
    # The gap to the previous event: often none (helpdesks stamp whole seconds), up to days.
    gap = draw(
        st.one_of(
            st.just(0),
            st.integers(0, 120),
            st.integers(0, 4 * 86_400),
        )
    )
    return TicketEvent(T0 + timedelta(seconds=gap), kind, value)  # made absolute below


@st.composite
def tickets(draw: st.DrawFn) -> tuple[Ticket, datetime]:
    created = draw(
        st.one_of(
            st.just(T0),
            st.builds(lambda s: T0 + timedelta(seconds=s), st.integers(-86_400, 86_400)),
            st.sampled_from(EXTREMES),
        )
    )
    moment = created
    history: list[TicketEvent] = []
    size = draw(st.sampled_from([0, 1, 3, 10, 40, 200]))
    for drawn in draw(st.lists(events(), min_size=size // 2, max_size=size)):
        try:
            moment += drawn.at - T0
        except OverflowError:
            break
        history.append(TicketEvent(moment, drawn.kind, drawn.value))
    if history and draw(st.booleans()):
        index = draw(st.integers(0, len(history) - 1))
        extreme = draw(st.sampled_from(EXTREMES))
        if extreme >= history[index].at:  # keep time order, as the source sorts it
            history = [*history[:index], TicketEvent(extreme, EventKind.PUBLIC_REPLY)]
    ticket = Ticket(
        ticket_id="1",
        created_at=created,
        queue="support",
        initial_status=draw(st.sampled_from(STATUSES)),
        initial_priority=draw(st.sampled_from(PRIORITIES)),
        events=tuple(history),
    )
    now = draw(
        st.one_of(
            st.builds(lambda s: T0 + timedelta(seconds=s), st.integers(-86_400, 40 * 86_400)),
            st.sampled_from([e.at for e in history] or [T0]),
            st.sampled_from(EXTREMES),
        )
    )
    return ticket, now


PROPERTIES = settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def check(ticket: Ticket, policies: PolicySet, now: datetime) -> None:
    try:
        evaluation = evaluate_ticket(ticket, policies, now)
    except TicketError:
        return
    for status in evaluation.clocks.values():
        assert (status.state is ClockState.BREACHED) == (status.breached_at is not None)
        if not status.stopped and status.breached_at is not None:
            assert status.breached_at <= now
        assert status.elapsed_seconds >= 0
        if status.running:
            assert status.state in (ClockState.OK, ClockState.AT_RISK, ClockState.BREACHED)
        # A clock still running at its deadline instant is breached at that instant.
        if status.deadline is not None and status.running and now >= status.deadline:
            assert status.state is ClockState.BREACHED
        if status.state in (ClockState.OK, ClockState.AT_RISK):
            assert status.deadline is not None and now < status.deadline
            assert status.breach_due == status.deadline
    if evaluation.next_transition is not None:
        assert evaluation.next_transition > now
    # Each update window has its own key, the running one included.
    windows = [c.key for c in evaluation.completions if c.clock is Clock.UPDATE]
    update = evaluation.clocks.get(Clock.UPDATE)
    if update is not None and not update.stopped:
        windows.append(update.started_at.isoformat())
    assert len(windows) == len(set(windows))
    # Nothing happens before the next transition: judged then, the clocks it names have moved.
    due = evaluation.next_transition
    if due is not None and not any(now < event.at <= due for event in ticket.events):
        later = evaluate_ticket(ticket, policies, due)
        for clock, status in evaluation.clocks.items():
            if status.breach_due == due:
                assert later.clocks[clock].state is ClockState.BREACHED
                assert later.clocks[clock].breached_at == due
            if status.at_risk_at == due and status.running:
                assert later.clocks[clock].state in (ClockState.AT_RISK, ClockState.BREACHED)
            if status.overdue_at == due and status.running:
                assert later.clocks[clock].overdue


@PROPERTIES
@given(drawn=tickets(), policies=POLICY_SETS)
def test_evaluation_judges_or_rejects_every_history(
    drawn: tuple[Ticket, datetime], policies: PolicySet
) -> None:
    check(*drawn[:1], policies, drawn[1])


# --- the contract options: next reply, pauses per clock, reopen, pause limit ----------------

OPTION_STATUSES = [[], ["pending"], ["waiting", "open"], ["pending", "waiting"], ["new"]]


@st.composite
def contract_policies(draw: st.DrawFn) -> PolicySet:
    """A random policy set whose policies set the contract options at random."""
    base = draw(POLICY_SETS)

    def vary(policy: Policy) -> Policy:
        pause = draw(
            st.dictionaries(
                st.sampled_from(list(Clock)),
                st.sampled_from(OPTION_STATUSES).map(frozenset),
                max_size=3,
            )
        )
        return replace(
            policy,
            next_reply_seconds=draw(st.sampled_from([None, 60.0, 1800.0, 7200.0])),
            pause=pause,
            reopen=draw(st.sampled_from(list(Reopen))),
            max_pause_seconds=draw(st.sampled_from([None, 0.0, 600.0, 3 * 86400.0])),
        )

    rules = tuple(replace(rule, policy=vary(rule.policy)) for rule in base.rules)
    return replace(base, rules=rules, default=vary(base.default))


@settings(PROPERTIES, max_examples=400)
@given(drawn=tickets(), policies=contract_policies())
def test_contract_options_judge_or_reject_every_history(
    drawn: tuple[Ticket, datetime], policies: PolicySet
) -> None:
    ticket, now = drawn
    check(ticket, policies, now)
    try:
        evaluation = evaluate_ticket(ticket, policies, now)
    except TicketError:
        return
    # Each next-reply window has its own key, the running one included.
    windows = [c.key for c in evaluation.completions if c.clock is Clock.NEXT_REPLY]
    reply = evaluation.clocks.get(Clock.NEXT_REPLY)
    if reply is not None and not reply.stopped:
        windows.append(reply.started_at.isoformat())
    assert len(windows) == len(set(windows))
    assert len({(c.clock, c.key) for c in evaluation.completions}) == len(evaluation.completions)
    if evaluation.pause_limit_at is not None:
        assert evaluation.paused_since is not None
        assert evaluation.paused_since <= evaluation.pause_limit_at


@settings(PROPERTIES, max_examples=300)
@given(drawn=tickets(), policies=POLICY_SETS)
def test_a_pause_override_equal_to_the_default_changes_nothing(
    drawn: tuple[Ticket, datetime], policies: PolicySet
) -> None:
    """The per-clock path, forced with the paused statuses plus one no ticket has, judges as
    the shared one: the override only changes which statuses pause a clock."""
    ticket, now = drawn
    paused = policies.statuses.paused | {"no-such-status"}
    every = dict.fromkeys(Clock, paused)
    forced = replace(
        policies,
        rules=tuple(replace(r, policy=replace(r.policy, pause=every)) for r in policies.rules),
        default=replace(policies.default, pause=every),
    )
    try:
        expected = evaluate_ticket(ticket, policies, now)
    except TicketError as error:
        try:
            evaluate_ticket(ticket, forced, now)
        except TicketError as again:
            assert again.reason == error.reason
            return
        raise AssertionError("the override accepted what the default rejected") from None
    assert evaluate_ticket(ticket, forced, now) == expected


# --- sticky breaches: one pass, the same as judging every prefix ----------------------------


def prefix_breaches(ticket: Ticket, policies: PolicySet) -> dict[Clock, datetime]:
    """The definition, slowly: the ticket judged just before each priority change."""
    found: dict[Clock, datetime] = {}
    for index, event in enumerate(ticket.events):
        if event.kind is not EventKind.PRIORITY_CHANGE:
            continue
        prefix = Ticket(
            ticket.ticket_id,
            ticket.created_at,
            ticket.queue,
            ticket.initial_status,
            ticket.initial_priority,
            events=ticket.events[:index],
        )
        for clock, status in evaluate_ticket(prefix, policies, event.at).clocks.items():
            if clock is not Clock.UPDATE and status.breached_at is not None:
                found.setdefault(clock, status.breached_at)
    return found


@settings(PROPERTIES, max_examples=200)
@given(
    steps=st.lists(st.tuples(st.integers(1, 5 * 3600), st.sampled_from([*EventKind])), max_size=25),
    policies=POLICY_SETS,
    values=st.randoms(use_true_random=False),
)
def test_sticky_breaches_are_the_breaches_before_each_priority_change(steps, policies, values):
    moment, history = T0, []
    for gap, kind in steps:  # distinct instants: equal ones are judged by order, not time
        moment += timedelta(seconds=gap)
        value = None
        if kind is EventKind.STATUS_CHANGE:
            value = values.choice(STATUSES)
        elif kind is EventKind.PRIORITY_CHANGE:
            value = values.choice(PRIORITIES)
        history.append(TicketEvent(moment, kind, value))
    ticket = Ticket("1", T0, "support", "new", values.choice(PRIORITIES), events=tuple(history))
    now = moment + timedelta(hours=1)
    sticky = _sticky_breaches(ticket, policies, _Times(ticket, policies, now))
    assert sticky == prefix_breaches(ticket, policies)
    evaluation = evaluate_ticket(ticket, policies, now)
    for clock in sticky:  # never withdrawn
        assert clock not in evaluation.clocks or evaluation.clocks[clock].breached_at is not None


class CountingCalendar(ContinuousCalendar):
    """24x7, counting the business time it measures: the work an evaluation does."""

    def __init__(self) -> None:
        self.calls = 0

    def business_microseconds(self, start: datetime, end: datetime) -> int:
        self.calls += 1
        return super().business_microseconds(start, end)


def test_priority_flapping_costs_linear_work():
    calendar = CountingCalendar()
    policies = policy_set(calendar, 0.75, 2.0)
    flaps = tuple(
        TicketEvent(T0 + timedelta(minutes=10 * i), EventKind.PRIORITY_CHANGE, priority)
        for i, priority in enumerate(["urgent", "low"] * 20)
    )
    ticket = Ticket("1", T0, "support", "new", "normal", events=flaps)
    evaluation = evaluate_ticket(ticket, policies, T0 + timedelta(hours=7))
    # Breached under urgent (15 min) before the first flap back to low; never withdrawn.
    assert evaluation.clocks[Clock.FIRST_RESPONSE].breached_at == T0 + timedelta(minutes=15)
    assert evaluation.clocks[Clock.FIRST_RESPONSE].state is ClockState.BREACHED
    # Judging every prefix, recursively, took 2^40 evaluations; one pass takes a few per event.
    assert calendar.calls < 10 * len(flaps)


def office_week(hour: int) -> datetime:
    return datetime(2026, 3, 23, hour, tzinfo=UTC)


def test_flaps_on_business_hours_keep_the_first_breach():
    policies = policy_set(OFFICE, 0.75, 2.0)
    flaps = (
        TicketEvent(office_week(8) + timedelta(minutes=30), EventKind.PRIORITY_CHANGE, "urgent"),
        TicketEvent(office_week(11), EventKind.PRIORITY_CHANGE, "low"),
    )
    ticket = Ticket("1", office_week(8), "support", "new", "normal", events=flaps)
    status = evaluate_ticket(ticket, policies, office_week(14)).clocks[Clock.FIRST_RESPONSE]
    # Monday 08:00 UTC is 09:00 in Berlin: urgent's 15 minutes ran out at 08:15 UTC.
    assert status.breached_at == office_week(8) + timedelta(minutes=15)

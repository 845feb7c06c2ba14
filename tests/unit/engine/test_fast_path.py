"""The engine's fast path for the common ticket (one open interval on the 24x7 calendar, in
UTC) against the general path as its oracle: on every generated history the two evaluations
are the same, down to each instant's time zone (compared through repr)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sla_monitor.engine.clocks as clocks
from sla_monitor.engine import (
    Clock,
    ContinuousCalendar,
    EventKind,
    PolicySet,
    Ticket,
    TicketEvent,
    evaluate_ticket,
)
from sla_monitor.engine.clocks import TicketError, _FlatOpenTime, _OpenTime, _Times, _until
from tests.unit.engine.test_properties import POLICY_SETS, contract_policies, policy_set, tickets

T0 = datetime(2026, 3, 27, 15, 0, tzinfo=UTC)
COMMON = policy_set(ContinuousCalendar(), 0.75, 2.0)
ELSEWHERE = timezone(timedelta(hours=2))
ORACLE = settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@contextmanager
def general_path() -> Iterator[None]:
    clocks.FAST_PATH = False
    try:
        yield
    finally:
        clocks.FAST_PATH = True


def outcome(ticket: Ticket, policies: PolicySet, now: datetime) -> str:
    """The evaluation's repr (instants with their zones), or the error it raised."""
    try:
        return repr(evaluate_ticket(ticket, policies, now))
    except TicketError as error:
        return f"TicketError({error})"


def same_on_both_paths(ticket: Ticket, policies: PolicySet, now: datetime) -> None:
    fast = outcome(ticket, policies, now)
    with general_path():
        general = outcome(ticket, policies, now)
    assert fast == general


@st.composite
def common_tickets(draw: st.DrawFn) -> tuple[Ticket, datetime]:
    """Mostly the tickets the fast path takes: open statuses only, replies, updates and
    customer messages, minutes to days apart; sometimes a priority change, a hold, a
    resolution or an instant in another zone, so both paths meet at their border."""
    created = T0 + timedelta(seconds=draw(st.integers(-3 * 86_400, 0)))
    kinds = st.sampled_from(
        [EventKind.PUBLIC_REPLY, EventKind.CUSTOMER_MESSAGE, EventKind.AUTOMATIC_UPDATE] * 4
        + [EventKind.STATUS_CHANGE] * 3
        + [EventKind.PRIORITY_CHANGE, EventKind.INTERNAL_NOTE]
    )
    moment = created
    history = []
    for _ in range(draw(st.integers(0, 6))):
        moment += timedelta(
            seconds=draw(st.one_of(st.just(0), st.integers(0, 7200), st.integers(0, 3 * 86_400))),
            microseconds=draw(st.sampled_from([0, 0, 1, 999_999])),
        )
        kind = draw(kinds)
        value = None
        if kind is EventKind.STATUS_CHANGE:
            value = draw(st.sampled_from(["open", "new", "open", "pending", "resolved"]))
        elif kind is EventKind.PRIORITY_CHANGE:
            value = draw(st.sampled_from(["urgent", "high", "normal", "low"]))
        at = moment.astimezone(ELSEWHERE) if draw(st.integers(0, 9)) == 0 else moment
        history.append(TicketEvent(at, kind, value))
    ticket = Ticket(
        ticket_id="1",
        created_at=created,
        queue="support",
        initial_status=draw(st.sampled_from(["new", "new", "open", "pending"])),
        initial_priority=draw(st.sampled_from(["urgent", "high", "normal", "low"])),
        events=tuple(history),
    )
    choices = [e.at for e in history] or [created]
    now = draw(
        st.one_of(
            st.builds(lambda s: created + timedelta(seconds=s), st.integers(-120, 6 * 86_400)),
            st.sampled_from(choices),
        )
    )
    return ticket, now


@ORACLE
@given(drawn=common_tickets())
def test_the_fast_path_judges_common_tickets_as_the_general_path(
    drawn: tuple[Ticket, datetime],
) -> None:
    same_on_both_paths(drawn[0], COMMON, drawn[1])


@settings(ORACLE, max_examples=300)
@given(drawn=common_tickets(), policies=contract_policies())
def test_the_fast_path_agrees_under_every_contract_option(
    drawn: tuple[Ticket, datetime], policies: PolicySet
) -> None:
    same_on_both_paths(drawn[0], policies, drawn[1])


@settings(ORACLE, max_examples=300)
@given(drawn=tickets(), policies=POLICY_SETS)
def test_the_fast_path_agrees_on_any_history(
    drawn: tuple[Ticket, datetime], policies: PolicySet
) -> None:
    same_on_both_paths(drawn[0], policies, drawn[1])


def test_the_common_ticket_takes_the_fast_path_and_others_do_not() -> None:
    replied = Ticket(
        "1",
        T0,
        "support",
        "new",
        "normal",
        events=(TicketEvent(T0 + timedelta(minutes=20), EventKind.PUBLIC_REPLY),),
    )
    now = T0 + timedelta(hours=2)
    policy = COMMON.default
    assert isinstance(
        _Times(_until(replied, now), COMMON, now).on(policy, Clock.RESOLUTION), _FlatOpenTime
    )
    held = Ticket(
        "2",
        T0,
        "support",
        "new",
        "normal",
        events=(TicketEvent(T0 + timedelta(minutes=20), EventKind.STATUS_CHANGE, "pending"),),
    )
    measure = _Times(_until(held, now), COMMON, now).on(policy, Clock.RESOLUTION)
    assert type(measure) is _OpenTime
    with general_path():
        measure = _Times(_until(replied, now), COMMON, now).on(policy, Clock.RESOLUTION)
        assert type(measure) is _OpenTime

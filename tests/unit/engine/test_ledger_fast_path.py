"""The ledger's fast path for a common window (its clock's measure flat: one open interval
on the 24x7 calendar in UTC; no priority change; a status change inside it only with an
at-risk share up to 1) against the general walk as its oracle: on every generated history
the two ledgers are the same, down to each instant's time zone (compared through repr), with
and without ``since``."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

import sla_monitor.engine.ledger as ledger_module
from sla_monitor.engine import ContinuousCalendar, EventKind, PolicySet, Ticket, TicketEvent
from sla_monitor.engine.clocks import TicketError
from sla_monitor.engine.ledger import derive_ledger
from tests.unit.engine.test_fast_path import COMMON, ORACLE, T0, common_tickets, general_path
from tests.unit.engine.test_properties import POLICY_SETS, contract_policies, policy_set, tickets


def ledger(ticket: Ticket, policies: PolicySet, now: datetime, since: datetime | None) -> str:
    """The ledger's repr (instants with their zones), or the error it raised."""
    try:
        return repr(derive_ledger(ticket, policies, now, since))
    except TicketError as error:
        return f"TicketError({error})"


def same_on_both_paths(
    ticket: Ticket, policies: PolicySet, now: datetime, since: datetime | None
) -> None:
    fast = ledger(ticket, policies, now, since)
    with general_path():  # no flat measure: the ledger's fast path is never taken
        general = ledger(ticket, policies, now, since)
    assert fast == general


def a_since(data: st.DataObject, ticket: Ticket, now: datetime) -> datetime | None:
    instants = [ticket.created_at, now, *(e.at for e in ticket.events)]
    return data.draw(
        st.one_of(
            st.none(),
            st.sampled_from(instants),
            st.builds(lambda s: shifted(ticket.created_at, s), st.integers(-60, 6 * 86_400)),
        )
    )


def shifted(moment: datetime, seconds: int) -> datetime | None:
    """``moment`` plus ``seconds``, or None past the calendar (generated instants may lie at
    its edges)."""
    try:
        return moment + timedelta(seconds=seconds)
    except OverflowError:
        return None


@ORACLE
@given(drawn=common_tickets(), data=st.data())
def test_the_fast_path_derives_common_ledgers_as_the_general_walk(
    drawn: tuple[Ticket, datetime], data: st.DataObject
) -> None:
    ticket, now = drawn
    same_on_both_paths(ticket, COMMON, now, a_since(data, ticket, now))


@settings(ORACLE, max_examples=300)
@given(drawn=common_tickets(), policies=contract_policies(), data=st.data())
def test_the_ledger_fast_path_agrees_under_every_contract_option(
    drawn: tuple[Ticket, datetime], policies: PolicySet, data: st.DataObject
) -> None:
    ticket, now = drawn
    same_on_both_paths(ticket, policies, now, a_since(data, ticket, now))


@settings(ORACLE, max_examples=300)
@given(drawn=tickets(), policies=POLICY_SETS, data=st.data())
def test_the_ledger_fast_path_agrees_on_any_history(
    drawn: tuple[Ticket, datetime], policies: PolicySet, data: st.DataObject
) -> None:
    ticket, now = drawn
    same_on_both_paths(ticket, policies, now, a_since(data, ticket, now))


def test_a_common_ticket_takes_the_ledger_fast_path(monkeypatch) -> None:
    taken: list[object] = []
    flat = ledger_module._Ledger.walk_flat

    def spy(self, *args):  # type: ignore[no-untyped-def]
        taken.append(args[0].clock)
        return flat(self, *args)

    monkeypatch.setattr(ledger_module._Ledger, "walk_flat", spy)
    replied = Ticket(
        "1",
        T0,
        "support",
        "new",
        "normal",
        events=(TicketEvent(T0 + timedelta(minutes=20), EventKind.PUBLIC_REPLY),),
    )
    derive_ledger(replied, COMMON, T0 + timedelta(hours=30))
    assert len(taken) == 4  # first response, resolution, two update windows
    taken.clear()
    held = Ticket(
        "2",
        T0,
        "support",
        "new",
        "normal",
        events=(TicketEvent(T0 + timedelta(minutes=20), EventKind.STATUS_CHANGE, "pending"),),
    )
    derive_ledger(held, COMMON, T0 + timedelta(hours=30))
    assert taken == []
    with general_path():
        derive_ledger(replied, COMMON, T0 + timedelta(hours=30))
    assert taken == []


@st.composite
def on_the_thresholds(draw: st.DrawFn) -> tuple[Ticket, PolicySet, datetime]:
    """Replies, updates, customer messages, open-to-open status changes and ``now`` exactly
    at a window's at-risk or breach instant (or a microsecond off), on the 24x7 calendar; the
    at-risk share also 1 and above (a Policy allows it, the config does not), so the border
    where a status change inside a window sends it down the general walk is met."""
    ratio = draw(st.sampled_from([0.5, 0.75, 1.0, 1.25, 2.0]))
    policies = policy_set(ContinuousCalendar(), ratio, 2.0)
    targets = [900, 1800, 3600, 4 * 3600, 8 * 3600, 24 * 3600, 72 * 3600]
    offsets = st.builds(
        lambda target, share, nudge: timedelta(seconds=target * share, microseconds=nudge),
        st.sampled_from(targets),
        st.sampled_from([ratio, 1.0, 0.5, 2.0]),
        st.sampled_from([0, 0, -1, 1]),
    )
    created = T0
    history = []
    moment = created
    for _ in range(draw(st.integers(0, 5))):
        base = draw(st.sampled_from([created, moment]))
        moment = max(moment, base + draw(offsets))
        kind = draw(
            st.sampled_from(
                [
                    EventKind.PUBLIC_REPLY,
                    EventKind.AUTOMATIC_UPDATE,
                    EventKind.CUSTOMER_MESSAGE,
                    EventKind.STATUS_CHANGE,
                ]
            )
        )
        value = draw(st.sampled_from(["new", "open"])) if kind is EventKind.STATUS_CHANGE else None
        history.append(TicketEvent(moment, kind, value))
    ticket = Ticket(
        "1",
        created,
        "support",
        draw(st.sampled_from(["new", "open"])),
        draw(st.sampled_from(["urgent", "high", "normal", "low"])),
        events=tuple(history),
    )
    now = draw(st.sampled_from([created, moment])) + draw(offsets)
    return ticket, policies, now


@ORACLE
@given(drawn=on_the_thresholds(), data=st.data())
def test_the_ledger_fast_path_agrees_on_the_thresholds(
    drawn: tuple[Ticket, PolicySet, datetime], data: st.DataObject
) -> None:
    ticket, policies, now = drawn
    same_on_both_paths(ticket, policies, now, a_since(data, ticket, now))

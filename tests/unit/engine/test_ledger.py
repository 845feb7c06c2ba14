"""The SLA ledger (sla_monitor.engine.ledger): on any history (events in any order of kinds,
equal timestamps, flapping priorities, pauses, re-opens) it is derived without error, the same
every time, in time order per clock, and append-only: derived later from the same history it
holds every entry derived earlier. And on hand-made tickets it says what happened."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from sla_monitor.engine import (
    Clock,
    ContinuousCalendar,
    EventKind,
    Policy,
    PolicyRule,
    PolicySet,
    Ticket,
    TicketEvent,
    evaluate_ticket,
)
from sla_monitor.engine.clocks import TicketError
from sla_monitor.engine.ledger import LedgerKind, derive_ledger
from sla_monitor.engine.policy import Reopen
from tests.unit.engine.test_properties import PROPERTIES, contract_policies, tickets

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@settings(PROPERTIES, max_examples=500)
@given(drawn=tickets(), policies=contract_policies(), data=st.data())
def test_the_ledger_is_deterministic_ordered_and_append_only(
    drawn: tuple[Ticket, datetime], policies: PolicySet, data: st.DataObject
) -> None:
    ticket, now = drawn
    try:
        evaluate_ticket(ticket, policies, now)
    except TicketError:
        try:
            derive_ledger(ticket, policies, now)
        except TicketError:
            return  # refused alike
        raise AssertionError("the ledger judged a ticket the evaluation refuses") from None
    ledger = derive_ledger(ticket, policies, now)
    assert derive_ledger(ticket, policies, now) == ledger  # deterministic
    identities = [entry.identity for entry in ledger]
    assert len(identities) == len(set(identities))  # each transition once
    assert all(entry.at <= now for entry in ledger)
    for clock in Clock:  # in time order per clock
        instants = [entry.at for entry in ledger if entry.clock is clock]
        assert instants == sorted(instants)
    assert all(entry.elapsed_seconds >= 0 for entry in ledger)
    # Append-only: an earlier derivation's entries are all still there, the same.
    instants = sorted({ticket.created_at, *(e.at for e in ticket.events)})
    earlier = data.draw(
        st.one_of(
            st.sampled_from([i for i in instants if i <= now] or [now]),
            st.builds(lambda s: now - timedelta(seconds=s), st.integers(0, 10 * 86_400)),
        )
    )
    try:
        before = derive_ledger(ticket, policies, earlier)
    except TicketError:
        return  # e.g. created after that instant
    assert set(before) <= set(ledger)
    # Only the entries after ``since``: exactly the tail.
    assert derive_ledger(ticket, policies, now, since=earlier) == tuple(
        e for e in ledger if e.at > earlier
    )


def test_a_message_to_a_resolved_ticket_owes_nothing_and_stays_so_when_resolved_again() -> None:
    """Found by the property above: customer messages to a ticket opened resolved, then a
    re-open and a resolution at one instant. The window of the later message was 'met' when
    derived before that instant (an open window counted as answered) and 'stopped' after it:
    an entry the ledger had recorded vanished. Nothing is owed while resolved: stopped, both
    times, as the evaluation (no next_reply completion) says."""
    policy = Policy(
        "urgent", first_response_seconds=900, resolution_seconds=14400, next_reply_seconds=60
    )
    policies = PolicySet(rules=(PolicyRule(policy, priorities=frozenset({"urgent"})),))
    message = EventKind.CUSTOMER_MESSAGE
    ticket = Ticket(
        ticket_id="1",
        created_at=T0,
        queue="support",
        initial_status="resolved",
        initial_priority="urgent",
        events=(
            TicketEvent(T0, message),
            TicketEvent(T0 + timedelta(seconds=1), message),
            TicketEvent(T0 + timedelta(seconds=2), message),
            TicketEvent(T0 + timedelta(seconds=2), EventKind.STATUS_CHANGE, "new"),
            TicketEvent(T0 + timedelta(seconds=2), EventKind.STATUS_CHANGE, "resolved"),
        ),
    )

    def windows(seconds: int) -> set[tuple[str, LedgerKind]]:
        now = T0 + timedelta(seconds=seconds)
        entries = derive_ledger(ticket, policies, now)
        return {(e.window_key, e.kind) for e in entries if e.clock is Clock.NEXT_REPLY}

    later = T0 + timedelta(seconds=1)
    assert (later.isoformat(), LedgerKind.STOPPED) in windows(1)
    assert windows(1) <= windows(2)
    assert not any(kind is LedgerKind.MET for _, kind in windows(2))

    # Replied to while still resolved: stopped when written, met when answered, as the
    # evaluation's completion (met, at the reply) says.
    reply = T0 + timedelta(seconds=3)
    ticket = replace(
        ticket,
        events=(TicketEvent(later, message), TicketEvent(reply, EventKind.PUBLIC_REPLY)),
    )
    assert windows(2) == {
        (later.isoformat(), LedgerKind.STARTED),
        (later.isoformat(), LedgerKind.STOPPED),
    }
    entries = derive_ledger(ticket, policies, reply)
    assert (later.isoformat(), LedgerKind.MET, reply) in {
        (e.window_key, e.kind, e.at) for e in entries if e.clock is Clock.NEXT_REPLY
    }
    completion = next(
        c
        for c in evaluate_ticket(ticket, policies, reply).completions
        if c.clock is Clock.NEXT_REPLY
    )
    assert completion.met and completion.stopped_at == reply


def _policies(reopen: Reopen = Reopen.RESUME) -> PolicySet:
    default = Policy(
        name="default",
        first_response_seconds=3600,
        resolution_seconds=8 * 3600,
        update_interval_seconds=None,
        at_risk_ratio=0.75,
        reopen=reopen,
        calendar=ContinuousCalendar(),
    )
    urgent = replace(default, name="urgent", first_response_seconds=600)
    return PolicySet(rules=(PolicyRule(urgent, priorities=frozenset({"urgent"})),), default=default)


def kinds(ticket: Ticket, policies: PolicySet, now: datetime, clock: Clock) -> list[tuple]:
    return [
        (e.kind.value, e.at, e.policy, round(e.elapsed_seconds))
        for e in derive_ledger(ticket, policies, now)
        if e.clock is clock
    ]


def test_a_first_response_paused_at_risk_then_breached() -> None:
    ticket = Ticket(
        "7",
        T0,
        "support",
        "open",
        "normal",
        events=(
            TicketEvent(at(30), EventKind.STATUS_CHANGE, "pending"),
            TicketEvent(at(40), EventKind.STATUS_CHANGE, "open"),
            TicketEvent(at(100), EventKind.PUBLIC_REPLY),
        ),
    )
    assert kinds(ticket, _policies(), at(120), Clock.FIRST_RESPONSE) == [
        ("started", at(0), "default", 0),
        ("paused", at(30), "default", 1800),
        ("resumed", at(40), "default", 1800),
        ("at_risk", at(55), "default", 2700),
        ("breached", at(70), "default", 3600),
        ("stopped", at(100), "default", 5400),
    ]


def test_a_priority_change_records_both_policies_and_breaches_then() -> None:
    ticket = Ticket(
        "8",
        T0,
        "support",
        "open",
        "normal",
        events=(TicketEvent(at(20), EventKind.PRIORITY_CHANGE, "urgent"),),
    )
    ledger = [
        e for e in derive_ledger(ticket, _policies(), at(30)) if e.clock is Clock.FIRST_RESPONSE
    ]
    assert [(e.kind, e.at, e.policy, e.previous_policy) for e in ledger] == [
        (LedgerKind.STARTED, at(0), "default", None),
        (LedgerKind.POLICY_CHANGED, at(20), "urgent", "default"),
        # 20 minutes counted, already past urgent's 10: at risk and breached at the change.
        (LedgerKind.AT_RISK, at(20), "urgent", None),
        (LedgerKind.BREACHED, at(20), "urgent", None),
    ]
    assert ledger[-1].priority == "urgent" and ledger[0].priority == "normal"


def test_resolve_and_reopen_resume_one_resolution_clock() -> None:
    ticket = Ticket(
        "9",
        T0,
        "support",
        "open",
        "normal",
        events=(
            TicketEvent(at(10), EventKind.PUBLIC_REPLY),
            TicketEvent(at(60), EventKind.STATUS_CHANGE, "resolved"),
            TicketEvent(at(120), EventKind.STATUS_CHANGE, "open"),
        ),
    )
    assert kinds(ticket, _policies(), at(150), Clock.RESOLUTION) == [
        ("started", at(0), "default", 0),
        ("met", at(60), "default", 3600),
        ("reopened", at(120), "default", 3600),
    ]
    restarted = kinds(ticket, _policies(Reopen.RESTART), at(150), Clock.RESOLUTION)
    assert restarted == [
        ("started", at(0), "default", 0),
        ("met", at(60), "default", 3600),
        ("reopened", at(120), "default", 0),  # a new cycle, counted from the re-open
    ]
    keys = {
        e.window_key
        for e in derive_ledger(ticket, _policies(Reopen.RESTART), at(150))
        if e.clock is Clock.RESOLUTION
    }
    assert keys == {"", at(120).isoformat()}


def test_a_first_response_resolved_unanswered_stops_owing_nothing() -> None:
    ticket = Ticket(
        "10",
        T0,
        "support",
        "open",
        "normal",
        events=(TicketEvent(at(5), EventKind.STATUS_CHANGE, "resolved"),),
    )
    assert kinds(ticket, _policies(), at(6), Clock.FIRST_RESPONSE) == [
        ("started", at(0), "default", 0),
        ("stopped", at(5), "default", 300),
    ]


def test_since_keeps_only_later_entries() -> None:
    ticket = Ticket("11", T0, "support", "open", "normal")
    ledger = derive_ledger(ticket, _policies(), at(100), since=at(0))
    assert [(e.clock, e.kind) for e in ledger] == [
        (Clock.FIRST_RESPONSE, LedgerKind.AT_RISK),
        (Clock.FIRST_RESPONSE, LedgerKind.BREACHED),
    ]


@settings(PROPERTIES, max_examples=400)
@given(drawn=tickets(), policies=contract_policies())
def test_without_priority_changes_the_ledger_breaches_as_the_engine_does(
    drawn: tuple[Ticket, datetime], policies: PolicySet
) -> None:
    ticket, now = drawn
    ticket = replace(
        ticket, events=tuple(e for e in ticket.events if e.kind is not EventKind.PRIORITY_CHANGE)
    )
    try:
        evaluation = evaluate_ticket(ticket, policies, now)
    except TicketError:
        return
    ledger = derive_ledger(ticket, policies, now)
    engine = {(b.clock, b.key): b.breached_at for b in evaluation.breaches}
    entered = {(e.clock, e.window_key): e.at for e in ledger if e.kind is LedgerKind.BREACHED}
    assert engine.keys() == entered.keys()
    for window, moment in entered.items():
        # The same instant; later only for a clock that reached its target exactly as it was
        # resolved and runs again after a re-open (the engine then dates the breach back).
        assert moment >= engine[window]
    # Each window the engine counts as met has a met entry, at its stop or, when a resolution
    # stopped it earlier (the ledger's stop), before.
    met = [(e.clock, e.window_key, e.at) for e in ledger if e.kind is LedgerKind.MET]
    for completion in evaluation.completions:
        if completion.met and completion.clock is not Clock.RESOLUTION:
            window = completion.key if completion.clock is not Clock.FIRST_RESPONSE else ""
            assert any(
                (clock, key) == (completion.clock, window) and moment <= completion.stopped_at
                for clock, key, moment in met
            )

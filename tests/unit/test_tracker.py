"""The tracker keeps open tickets compactly and answers exactly as the engine would."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sla_monitor.engine import (
    Clock,
    EventKind,
    Policy,
    PolicyRule,
    PolicySet,
    Ticket,
    TicketEvent,
    evaluate_ticket,
)
from sla_monitor.tracker import Tracker

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
POLICIES = PolicySet()


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def ticket(ticket_id: str, *events: tuple[float, EventKind, str | None]) -> Ticket:
    return Ticket(
        ticket_id=ticket_id,
        created_at=T0,
        queue="support",
        initial_status="new",
        initial_priority="normal",
        subject=f"ticket {ticket_id}",
        events=tuple(TicketEvent(at(m), kind, value) for m, kind, value in events),
    )


BUSY = ticket(
    "1",
    (0, EventKind.CUSTOMER_MESSAGE, None),
    (30, EventKind.PUBLIC_REPLY, None),
    (31, EventKind.INTERNAL_NOTE, None),
    (40, EventKind.CUSTOMER_MESSAGE, None),
    (300, EventKind.PUBLIC_REPLY, None),
    (301, EventKind.STATUS_CHANGE, "open"),
)


def test_the_kept_evaluation_is_the_engines() -> None:
    tracker = Tracker(POLICIES)
    returned = tracker.update(BUSY, at(400))
    assert returned == evaluate_ticket(BUSY, POLICIES, at(400))
    assert tracker.evaluation("1") == returned


def test_events_no_clock_reads_are_not_kept() -> None:
    tracker = Tracker(POLICIES)
    tracker.update(BUSY, at(400))
    kept = tracker.ticket("1")
    assert kept is not None
    # Customer messages open next_reply windows: kept, whatever the policies.
    assert [e.kind for e in kept.events] == [
        EventKind.CUSTOMER_MESSAGE,
        EventKind.PUBLIC_REPLY,
        EventKind.CUSTOMER_MESSAGE,
        EventKind.PUBLIC_REPLY,
        EventKind.STATUS_CHANGE,
    ]
    assert (kept.ticket_id, kept.subject, kept.created_at) == ("1", "ticket 1", T0)
    assert evaluate_ticket(kept, POLICIES, at(2000)) == evaluate_ticket(BUSY, POLICIES, at(2000))
    replies = replace(POLICIES, default=replace(POLICIES.default, next_reply_seconds=3600.0))
    assert evaluate_ticket(kept, replies, at(2000)) == evaluate_ticket(BUSY, replies, at(2000))


def test_recorded_outcomes_are_not_offered_again_but_new_ones_are() -> None:
    tracker = Tracker(POLICIES)
    first = tracker.update(BUSY, at(400))
    outcomes = tracker.unrecorded(first)
    assert outcomes is not None
    assert {c.clock for c in outcomes.completions} == {Clock.FIRST_RESPONSE, Clock.UPDATE}
    tracker.mark_recorded(outcomes)
    assert tracker.unrecorded(first) is None
    later = tracker.update(BUSY, at(2000))  # the resolution clock has breached since
    fresh = tracker.unrecorded(later)
    assert fresh is not None
    assert fresh.completions == ()
    assert {b.clock for b in fresh.breaches} == {Clock.RESOLUTION, Clock.UPDATE}


def test_a_due_ticket_is_judged_again_at_its_transition() -> None:
    tracker = Tracker(POLICIES)
    young = ticket("2")
    tracker.update(young, at(10))
    due = tracker.next_due()
    assert due == at(45)  # 75 % of the 1 h first-response target
    assert tracker.refresh_due(at(44)) == []
    [refreshed] = tracker.refresh_due(at(45))
    assert refreshed.clocks[Clock.FIRST_RESPONSE].state == "at_risk"
    assert tracker.counts[("first_response", "at_risk", "normal", "support")] == 1
    assert ("first_response", "ok", "normal", "support") not in tracker.counts


def test_a_resolved_ticket_leaves_the_counts() -> None:
    tracker = Tracker(POLICIES)
    tracker.update(ticket("3"), at(10))
    tracker.update(ticket("4"), at(10))
    assert tracker.counts[("first_response", "ok", "normal", "support")] == 2
    tracker.update(ticket("3", (20, EventKind.STATUS_CHANGE, "resolved")), at(30))
    assert len(tracker) == 1
    assert tracker.counts[("first_response", "ok", "normal", "support")] == 1
    assert tracker.evaluation("3") is None


def test_a_ticket_is_unchanged_until_something_a_clock_reads_changes() -> None:
    tracker = Tracker(POLICIES)
    assert not tracker.unchanged(BUSY)  # not tracked yet
    tracker.update(BUSY, at(400))
    noted = replace(BUSY, events=(*BUSY.events, TicketEvent(at(360), EventKind.INTERNAL_NOTE)))
    assert tracker.unchanged(BUSY)
    assert tracker.unchanged(noted)
    # A customer message opens a next_reply window.
    asked = replace(BUSY, events=(*BUSY.events, TicketEvent(at(350), EventKind.CUSTOMER_MESSAGE)))
    assert not tracker.unchanged(asked)
    replied = replace(BUSY, events=(*BUSY.events, TicketEvent(at(390), EventKind.PUBLIC_REPLY)))
    assert not tracker.unchanged(replied)
    assert not tracker.unchanged(replace(BUSY, subject="renamed"))
    assert not tracker.unchanged(replace(BUSY, queue="billing"))
    # An event stamped after the ticket was judged was cut by the engine: judge it again.
    ahead = replace(BUSY, events=(*BUSY.events, TicketEvent(at(401), EventKind.PUBLIC_REPLY)))
    tracker.update(ahead, at(400))
    assert not tracker.unchanged(ahead)
    tracker.update(ahead, at(402))
    assert tracker.unchanged(ahead)


def test_open_tickets_are_counted_under_their_queue_label() -> None:
    tracker = Tracker(POLICIES)
    tracker.queue_label = lambda queue: "other" if queue != "support" else queue
    tracker.update(ticket("5"), at(10))
    tracker.update(replace(ticket("6"), queue="billing"), at(10))
    tracker.update(replace(ticket("7"), queue="sales"), at(10))
    assert {key[3] for key in tracker.counts} == {"support", "other"}
    assert tracker.counts[("first_response", "ok", "normal", "other")] == 2
    resolved = ticket("6", (5, EventKind.STATUS_CHANGE, "resolved"))
    tracker.update(replace(resolved, queue="billing"), at(10))
    assert tracker.counts[("first_response", "ok", "normal", "other")] == 1


def test_who_the_ticket_is_for_survives_tracking_and_a_new_plan_is_a_change() -> None:
    """A tracked ticket keeps its customer, organization and attributes (its policy depends on
    them), and a plan upgrade is a change that gets it judged again."""
    gold = PolicySet(rules=(PolicyRule(Policy(name="gold"), match={"plan": frozenset({"gold"})}),))
    tracker = Tracker(gold)
    standard = replace(
        ticket("7"),
        customer="jane@acme.example",
        organization="Acme",
        attributes={"plan": "standard"},
    )
    assert tracker.update(standard, at(5)).policy == "default"
    assert tracker.ticket("7") == standard
    upgraded = replace(standard, attributes={"plan": "gold"})
    assert not tracker.unchanged(upgraded)
    assert tracker.update(upgraded, at(6)).policy == "gold"
    evaluation = tracker.evaluation("7")
    assert evaluation is not None and evaluation.policy == "gold"


def test_recorded_outcomes_survive_an_update_that_changes_the_ticket_s_clocks() -> None:
    # The recorded fingerprints follow the deadlines in one bytes object: a new evaluation
    # with fewer running clocks (a reply stops first_response) must keep them whole.
    tracker = Tracker(POLICIES)
    waiting = ticket("3")
    first = tracker.update(waiting, at(200))  # first response breached, three clocks run
    outcomes = tracker.unrecorded(first)
    assert outcomes is not None and outcomes.breaches
    tracker.mark_recorded(outcomes)
    answered = ticket("3", (210, EventKind.PUBLIC_REPLY, None))
    later = tracker.update(answered, at(220))
    fresh = tracker.unrecorded(later)
    assert fresh is not None
    assert {b.key for b in fresh.breaches if b.clock is Clock.FIRST_RESPONSE} == set()
    assert {(c.clock, c.key) for c in fresh.completions} >= {(Clock.FIRST_RESPONSE, "")}
    tracker.mark_recorded(fresh)
    assert tracker.unrecorded(tracker.update(answered, at(221))) is None
    assert tracker.next_due() is not None and tracker.next_due() > at(221)


def test_an_event_stamped_after_now_is_judged_when_its_time_comes() -> None:
    # The helpdesk's clock may run ahead of the daemon's: a reply stamped 5 min after now is
    # ignored by the engine until then, and the tracker's timer brings that instant back.
    tracker = Tracker(POLICIES)
    early = ticket("4", (15, EventKind.PUBLIC_REPLY, None))
    judged = tracker.update(early, at(10))
    assert judged.clocks[Clock.FIRST_RESPONSE].stopped_at is None
    assert tracker.next_due() == at(15)  # not the at-risk instant, 45 min
    [later] = tracker.refresh_due(at(15))
    assert later.clocks[Clock.FIRST_RESPONSE].stopped_at == at(15)

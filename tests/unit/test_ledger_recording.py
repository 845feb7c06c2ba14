"""The ledger on its way to the store (tracker, judge, loop) without PostgreSQL: handed over
with the outcomes, only what is new since the last recording, never lost when a recording
fails or an older one is confirmed late, and recorded once across restarts."""

from __future__ import annotations

from datetime import datetime, timedelta

from sla_monitor.config import Settings, policy_set
from sla_monitor.engine import EventKind, Ticket, TicketEvent
from sla_monitor.engine.ledger import LedgerKind, derive_ledger
from sla_monitor.errors import DatabaseUnavailable
from sla_monitor.escalation_planner import EscalationPlanner
from sla_monitor.judge import Judge
from sla_monitor.metrics import Metrics
from sla_monitor.records import NewlyRecorded, TicketOutcomes
from sla_monitor.sources import Batch
from sla_monitor.testing import MemorySource, MemoryStore
from sla_monitor.tracker import Tracker
from tests.unit.test_daemon import T0, Clock, daemon, ticket


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


class Spy(MemoryStore):
    """A memory store that remembers the ledger entries each recording was handed."""

    handed: list[list[tuple[str, str, datetime]]]

    async def record(self, outcomes: list[TicketOutcomes], *args, **kwargs) -> NewlyRecorded:  # type: ignore[override]
        self.handed.append([(o.ticket_id, e.kind.value, e.at) for o in outcomes for e in o.ledger])
        return await super().record(outcomes, *args, **kwargs)


def spy() -> Spy:
    store = Spy()
    store.handed = []
    return store


def recorded(store: MemoryStore, ticket_id: str) -> set:
    return {e for (t, _), (e, _) in store.ledger_entries.items() if t == ticket_id}


async def test_timers_hand_over_only_the_new_entries_and_nothing_is_lost() -> None:
    clock = Clock(10)
    source, store = MemorySource(clock), spy()
    source.put(ticket("1"))
    d = daemon(source, store, clock)
    await d.poll_once()
    first = [row for rows in store.handed for row in rows]
    assert {kind for _, kind, _ in first} == {"started"}  # the three clocks, at creation
    assert len(first) == 3
    store.handed.clear()
    clock.set(61)
    await d.refresh_due()  # at risk at 45, breached at 60: both judged at 61
    await d.poll_once()
    assert sorted(row for rows in store.handed for row in rows) == [
        ("1", "at_risk", at(45)),
        ("1", "breached", at(60)),
    ]  # the three "started" were not handed over again
    expected = set(derive_ledger(source.tickets["1"][0], d.tracker.policies, at(61)))
    assert recorded(store, "1") == expected


async def test_a_restart_records_no_entry_twice() -> None:
    clock = Clock(10)
    source, store = MemorySource(clock), MemoryStore()
    source.put(ticket("1", (5, EventKind.PUBLIC_REPLY, None)))
    await daemon(source, store, clock).poll_once()
    before = dict(store.ledger_entries)
    assert before
    again = daemon(source, store, clock)  # a restart: every open ticket read again
    await again.poll_once()
    assert store.ledger_entries == before


def judge() -> Judge:
    tracker = Tracker(policy_set(Settings()))
    return Judge("helpdesk", tracker, Metrics(tracker), EscalationPlanner("helpdesk", []), None)


def identities(outcomes: TicketOutcomes) -> set:
    return {(e.kind.value, e.at) for e in outcomes.ledger}


def late_rows() -> Ticket:
    """Ticket 1 with a pause before minute 10 that the helpdesk committed late."""
    original = ticket("1")
    return Ticket(
        original.ticket_id,
        original.created_at,
        original.queue,
        original.initial_status,
        original.initial_priority,
        events=(
            TicketEvent(at(2), EventKind.STATUS_CHANGE, "pending"),
            TicketEvent(at(8), EventKind.STATUS_CHANGE, "open"),
        ),
    )


def test_a_history_changed_before_the_recorded_instant_hands_over_everything() -> None:
    j = judge()
    j.absorb(Batch(tickets=[ticket("1")]), at(10))
    j.recorded(j.take(), NewlyRecorded([], []))  # recorded up to minute 10
    j.absorb(Batch(tickets=[late_rows()]), at(20))
    handed = identities(j.take().outcomes["1"])
    assert {("paused", at(2)), ("resumed", at(8))} <= handed


def test_a_late_confirmation_never_drops_entries_still_waiting() -> None:
    j = judge()
    j.absorb(Batch(tickets=[ticket("1")]), at(10))
    in_flight = j.take()  # being recorded
    # Meanwhile a change arrives whose history differs before minute 10 (a late row): its
    # whole ledger waits to be recorded.
    j.absorb(Batch(tickets=[late_rows()]), at(20))
    j.recorded(in_flight, NewlyRecorded([], []))  # confirmed: the ledger is recorded to 10
    j.judge_due(at(55))  # at risk: derived only after minute 10, joined to what waits
    waiting = j.take().outcomes["1"]
    assert ("paused", at(2)) in identities(waiting)
    assert ("resumed", at(8)) in identities(waiting)
    assert ("at_risk", at(51)) in identities(waiting)


def test_a_failed_recording_keeps_its_entries_beside_newer_ones() -> None:
    j = judge()
    j.absorb(Batch(tickets=[ticket("1")]), at(10))
    failed = j.take()
    j.judge_due(at(50))  # the timer judges at risk meanwhile
    j.put_back(failed)
    kinds = {kind for kind, _ in identities(j.take().outcomes["1"])}
    assert {"started", "at_risk"} <= kinds


def test_an_unchanged_history_keeps_what_is_recorded() -> None:
    j = judge()
    j.absorb(Batch(tickets=[ticket("1")]), at(10))
    j.recorded(j.take(), NewlyRecorded([], []))
    # A reply after minute 10 changes the ticket but not its history up to 10.
    j.absorb(Batch(tickets=[ticket("1", (20, EventKind.PUBLIC_REPLY, None))]), at(21))
    handed = identities(j.take().outcomes["1"])
    assert handed == {("met", at(20)), ("started", at(20))}  # first_response; a new update window
    assert all(moment > at(10) for _, moment in handed)


async def test_entries_judged_during_an_outage_are_recorded_after_it() -> None:
    clock = Clock(10)
    source, store = MemorySource(clock), MemoryStore()
    source.put(ticket("1"))
    d = daemon(source, store, clock)
    await d.cycle()
    store.away = True
    for minutes in range(40, 70, 5):
        clock.set(minutes)
        await d.cycle()
    store.away = False
    d.request_poll()
    await d.cycle()
    kinds = {(e.kind, e.at) for e in recorded(store, "1")}
    assert {(LedgerKind.AT_RISK, at(45)), (LedgerKind.BREACHED, at(60))} <= kinds


async def test_the_memory_store_reads_a_ledger_in_order() -> None:
    clock = Clock(70)
    source, store = MemorySource(clock), MemoryStore()
    source.put(ticket("1"))
    await daemon(source, store, clock).poll_once()
    ledger = await store.ledger("1")
    assert [e.at for e in ledger] == sorted(e.at for e in ledger)
    assert ledger == list(derive_ledger(source.tickets["1"][0], policy_set(Settings()), at(70)))
    store.away = True
    try:
        await store.ledger("1")
    except DatabaseUnavailable:
        pass
    else:
        raise AssertionError("an away store must raise")

"""The loop's logic without PostgreSQL: in-memory source and store (sla_monitor.testing), an
injected clock. The same loop runs against the real database in tests/integration."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from sla_monitor.app import build_update_planner
from sla_monitor.config import Settings, escalation_levels, policy_set
from sla_monitor.daemon import Daemon
from sla_monitor.daemon_options import Timing
from sla_monitor.engine import EventKind, Ticket, TicketEvent
from sla_monitor.escalation_planner import EscalationPlanner
from sla_monitor.judge import Judge
from sla_monitor.metrics import Metrics
from sla_monitor.testing import MemorySource, MemoryStore
from sla_monitor.tracker import Tracker

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
FIRST_RESPONSE = {"clock": "first_response", "priority": "normal", "queue": "support"}


class Clock:
    def __init__(self, minutes: float = 0) -> None:
        self.now = T0 + timedelta(minutes=minutes)

    def set(self, minutes: float) -> None:
        self.now = T0 + timedelta(minutes=minutes)

    def __call__(self) -> datetime:
        return self.now


def ticket(ticket_id: str, *events: tuple[float, EventKind, str | None]) -> Ticket:
    return Ticket(
        ticket_id=ticket_id,
        created_at=T0,
        queue="support",
        initial_status="new",
        initial_priority="normal",
        events=tuple(TicketEvent(T0 + timedelta(minutes=m), k, v) for m, k, v in events),
    )


def daemon(source: MemorySource, store: MemoryStore, clock: Clock, updates: bool = False) -> Daemon:
    settings = Settings(
        escalation={"enabled": True, "channels": {"alertmanager": {"url": "http://127.0.0.1:9"}}},
        updates={"enabled": updates},
    )
    tracker = Tracker(policy_set(settings))
    metrics = Metrics(tracker)
    judge = Judge(
        "helpdesk",
        tracker,
        metrics,
        EscalationPlanner("helpdesk", escalation_levels(settings)),
        build_update_planner(settings),
    )
    timing = Timing(poll_interval=60.0, watermark_lag=0.0, reconcile_interval=0.0)
    return Daemon(source, store, judge, timing, clock=clock)


def value(d: Daemon, name: str, **labels: str) -> float:
    return d.metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def clock() -> Clock:
    return Clock(10)


@pytest.fixture
def source(clock: Clock) -> MemorySource:
    return MemorySource(clock)


async def test_a_breach_is_recorded_once_across_polls_and_restarts(source, clock) -> None:
    store = MemoryStore()
    source.put(ticket("1"))
    first = daemon(source, store, clock)
    await first.poll_once()
    clock.set(61)
    await first.refresh_due()  # the timer: breached at 60
    await first.poll_once()
    assert store.breaches == {("1", "first_response", "")}
    assert value(first, "sla_monitor_breaches_total", **FIRST_RESPONSE) == 1
    second = daemon(source, store, clock)  # a restart on the same store
    await second.poll_once()
    assert value(second, "sla_monitor_breaches_total", **FIRST_RESPONSE) == 0
    triggers = [m.dedup_key for m in store.outbox if m.action == "trigger"]
    assert len(triggers) == len(set(triggers)) == 2  # team and on-call, each once


async def test_what_an_outage_took_is_recorded_after_it_and_timers_wait(source, clock) -> None:
    store = MemoryStore()
    source.put(ticket("1"))
    d = daemon(source, store, clock)
    await d.cycle()
    store.away = True
    d.request_poll()
    await d.cycle()  # the poll fails: backoff
    calls = store.calls
    for minutes in range(50, 70):  # at-risk at 45, breached at 60: timers fall due
        clock.set(minutes)
        await d.cycle()
    assert store.calls == calls  # judged in memory, not one call to the database
    assert not d.ready and "away" in (d.last_error or "")
    store.away = False
    d.request_poll()
    await d.cycle()
    assert d.ready
    assert store.breaches == {("1", "first_response", "")}


async def test_a_ticket_deleted_from_the_helpdesk_resolves_its_escalations(source, clock) -> None:
    store = MemoryStore()
    source.put(ticket("1"))
    source.put(ticket("2"))
    clock.set(70)
    d = daemon(source, store, clock)
    await d.poll_once()
    assert sum(store.escalations.values()) == 4
    source.delete("1")
    await d.poll_once()
    assert "1" not in d.tracker and "2" in d.tracker
    resolved = {m.dedup_key for m in store.outbox if m.action == "resolve"}
    assert resolved == {k for k, ticket_id in store.escalated.items() if ticket_id == "1"}
    assert value(d, "sla_monitor_tickets_vanished_total") == 1


async def test_a_reply_resolves_the_alerts_and_a_resume_fires_a_new_episode(source, clock) -> None:
    store = MemoryStore()
    source.put(ticket("1"))
    clock.set(46)
    d = daemon(source, store, clock)
    await d.poll_once()
    assert [m.action for m in store.outbox] == ["trigger"]  # team: at risk
    source.put(ticket("1", (50, EventKind.STATUS_CHANGE, "pending")))
    clock.set(51)
    await d.poll_once()
    source.put(
        ticket("1", (50, EventKind.STATUS_CHANGE, "pending"), (55, EventKind.STATUS_CHANGE, "open"))
    )
    clock.set(56)
    await d.poll_once()
    assert [m.action for m in store.outbox] == ["trigger", "resolve", "trigger"]
    assert store.outbox[0].dedup_key != store.outbox[2].dedup_key


async def test_a_reload_takes_in_tickets_left_out_as_bad_rows(source, clock) -> None:
    store = MemoryStore()
    source.put(replace(ticket("1"), initial_priority="p0"))
    d = daemon(source, store, clock)
    await d.poll_once()
    assert "1" not in d.tracker
    assert value(d, "sla_monitor_bad_rows_total", reason="unknown_priority") == 1
    d.reload(policy_set(Settings(priorities=["urgent", "high", "normal", "low", "p0"])))
    await d.poll_once()
    assert "1" in d.tracker


# --- an active/standby pair (sla_monitor.leadership decides who leads) ------------------


class BacklogStore(MemoryStore):
    """Also keeps whether each escalation was recorded as a first start's backlog."""

    def __init__(self) -> None:
        super().__init__()
        self.backlog: dict[str, bool] = {}

    async def record(self, outcomes, watermark, escalations=None, updates=None):  # type: ignore[no-untyped-def]
        new = await super().record(outcomes, watermark, escalations, updates)
        if escalations is not None:
            for row in escalations.active:
                self.backlog.setdefault(row.dedup_key, escalations.backlog)
        return new


def replica(source: MemorySource, store: MemoryStore, clock: Clock, leads: list[bool]) -> Daemon:
    d = daemon(source, store, clock)
    d.leading = lambda: leads[0]
    return d


async def test_a_standby_records_nothing_and_its_takeover_loses_nothing(source, clock) -> None:
    store = MemoryStore()
    source.put(ticket("1"))
    source.put(ticket("2"))
    leader = daemon(source, store, clock)
    await leader.poll_once()
    leads = [False]
    standby = replica(source, store, clock, leads)
    await standby.poll_once()
    assert standby.role == "standby" and standby.ready and len(standby.tracker) == 2
    # The leader dies. Ticket 1 breaches, ticket 2 is answered and resolved: the standby
    # judges both (its gauges are true) and records nothing.
    clock.set(65)
    source.put(
        ticket("2", (20, EventKind.PUBLIC_REPLY, None), (64, EventKind.STATUS_CHANGE, "resolved"))
    )
    await standby.poll_once()
    clock.set(70)
    await standby.refresh_due()
    assert "2" not in standby.tracker
    assert value(standby, "sla_monitor_open_tickets", state="breached", **FIRST_RESPONSE) == 1
    assert not store.breaches and not store.completions and not store.outbox
    # It takes over: everything it judged is recorded, the completion of the ticket that
    # closed meanwhile included (read again from the stored watermark), each once.
    leads[0] = True
    standby.take_over()
    await standby.poll_once()
    assert {b[0] for b in store.breaches} == {"1"}
    completed = {(c[0], c[1]) for c in store.completions}
    assert {("2", "first_response"), ("2", "resolution")} <= completed
    assert all(ticket_id == "2" for ticket_id, _ in completed)
    triggers = [m.dedup_key for m in store.outbox if m.action == "trigger"]
    assert triggers and len(triggers) == len(set(triggers))
    assert value(standby, "sla_monitor_breaches_total", **FIRST_RESPONSE) == 1
    recorded = (len(store.breaches), len(store.completions), len(store.outbox))
    clock.set(75)
    await standby.poll_once()
    assert (len(store.breaches), len(store.completions), len(store.outbox)) == recorded


async def test_customer_updates_across_a_takeover_are_queued_once(source, clock) -> None:
    """An update owed while the leader is dead is queued by the standby's takeover, once;
    one the old leader had queued already is not queued again (same idempotency key)."""
    store = MemoryStore()
    source.put(ticket("1"))
    source.put(ticket("2"))
    leader = daemon(source, store, clock, updates=True)
    await leader.poll_once()
    leads = [False]
    standby = daemon(source, store, clock, updates=True)
    standby.leading = lambda: leads[0]
    await standby.poll_once()
    # 4 h without news (the default update interval): both tickets are owed an update.
    # The leader queues ticket 1's, then dies before ticket 2's is recorded.
    clock.set(4 * 60 + 5)
    source.put(ticket("1", (4 * 60 + 1, EventKind.INTERNAL_NOTE, None)))
    await leader.poll_once()
    queued = {m.dedup_key for m in store.outbox if m.action == "update"}
    assert len(queued) == 2  # the leader's one recording queued both
    store.outbox = [m for m in store.outbox if "/2/" not in m.dedup_key]
    store.updates = {key for key in store.updates if "/2/" not in key}
    # The standby judged both and recorded nothing.
    before = list(store.outbox)
    await standby.poll_once()
    await standby.refresh_due()
    assert store.outbox == before
    leads[0] = True
    standby.take_over()
    await standby.poll_once()
    updates = sorted(m.dedup_key for m in store.outbox if m.action == "update")
    assert updates == sorted(queued)  # ticket 2's queued now, ticket 1's not again
    clock.set(4 * 60 + 10)
    await standby.poll_once()
    assert sorted(m.dedup_key for m in store.outbox if m.action == "update") == updates


async def test_a_takeover_yields_between_chunks_and_stops_when_the_lead_is_lost(
    source, clock, monkeypatch
) -> None:
    """A takeover judges the tracker a chunk at a time and gives the loop back after each
    (the lock's proof must run, even when a chunk's recording was discarded); when the lead
    is lost meanwhile it stops instead of judging the rest for nothing, and the next poll
    that leads takes over again."""
    monkeypatch.setattr("sla_monitor.daemon.TAKEOVER_CHUNK", 2)
    store = MemoryStore()
    for n in range(10):
        source.put(ticket(str(n)))
    leads = [False]
    standby = replica(source, store, clock, leads)
    await standby.poll_once()
    clock.set(65)  # every first response breached: each chunk records a breach a ticket
    ticks: list[int] = []

    async def proof() -> None:  # stands for the leadership task's lock proof
        while True:
            ticks.append(len(store.breaches))
            if len(ticks) == 3:
                leads[0] = False  # the lock is lost during the takeover
            await asyncio.sleep(0)

    leads[0] = True
    standby.take_over()
    task = asyncio.create_task(proof())
    await asyncio.sleep(0)
    try:
        await standby.poll_once()
    finally:
        task.cancel()
    assert ticks[:3] == [0, 2, 4]  # it ran between chunks, each chunk recorded
    assert len(store.breaches) == 4  # then it stopped: 6 tickets left for the next lead
    assert standby._takeover
    leads[0] = True
    await standby.poll_once()
    assert len(store.breaches) == 10 and not standby._takeover


async def test_a_takeover_judges_the_rest_in_slices_while_polls_and_pages_go_on(
    source, clock, monkeypatch
) -> None:
    """The takeover records the latest discarded tickets at once and the rest of the tracker
    a slice per cycle; a breach read meanwhile is recorded by its own poll, not after the
    whole tracker; a first start's watermark waits until every ticket is judged again."""
    monkeypatch.setattr("sla_monitor.daemon.TAKEOVER_CHUNK", 2)
    monkeypatch.setattr("sla_monitor.daemon.REJUDGE_SLICE", 0.0)  # one chunk a slice
    monkeypatch.setattr("sla_monitor.daemon.RECENT", 2)
    store = MemoryStore()
    for n in range(10):
        source.put(ticket(str(n)))
    leads = [False]
    standby = replica(source, store, clock, leads)
    await standby.poll_once()
    clock.set(65)
    await standby.refresh_due()  # all ten breach: discarded, the last two remembered
    assert not store.breaches
    leads[0] = True
    standby.take_over()
    await standby.poll_once()  # the two remembered, then one slice of two
    assert len(store.breaches) == 4 and store.watermark is None
    source.put(ticket("new"))  # created at minute 0, read by the next poll: breached
    await standby.poll_once()
    recorded = {b[0] for b in store.breaches}
    assert "new" in recorded and len(recorded) == 7  # its own breach, and one more slice
    while standby._rejudge:
        await standby.refresh_due()
    assert {b[0] for b in store.breaches} == {*map(str, range(10)), "new"}
    assert store.watermark is None  # first start: recorded by the next poll, with the summary
    await standby.poll_once()
    assert store.watermark is not None


async def test_a_takeover_after_the_first_watermark_is_not_a_first_start(source, clock) -> None:
    """Both replicas start together on a first start: the standby's sync sees no watermark
    (a backlog), the leader then records one. When the standby takes over, what breaches is
    paged, never recorded as backlog, even by a refresh between the lead and its first poll."""
    store = BacklogStore()
    source.put(ticket("1"))
    leads = [False]
    standby = replica(source, store, clock, leads)
    await standby.poll_once()
    assert standby.judge.escalations.in_backlog
    leader = daemon(source, store, clock)
    await leader.poll_once()  # records the first watermark
    leads[0] = True
    standby.take_over()
    clock.set(61)
    await standby.refresh_due()  # a due timer before the takeover's poll: records nothing
    assert not store.escalations
    await standby.poll_once()
    assert store.escalations and not any(store.backlog.values())
    assert not standby.judge.escalations.in_backlog


async def test_a_leader_that_could_not_prove_its_lock_for_a_moment_loses_nothing(
    source, clock
) -> None:
    """While its lock is not proven (a busy loop, a slow check) the leader records nothing;
    what it judged meanwhile is recorded by its next poll once it leads again."""
    store = MemoryStore()
    source.put(ticket("1"))
    leads = [True]
    leader = replica(source, store, clock, leads)
    await leader.poll_once()
    leads[0] = False
    clock.set(61)
    await leader.refresh_due()  # the breach, judged while not leading: discarded
    assert not store.breaches
    leads[0] = True
    await leader.refresh_due()  # leading again: nothing records before the re-judging poll
    await leader.cycle()  # which comes at once
    assert {b[0] for b in store.breaches} == {"1"}
    assert any(m.action == "trigger" for m in store.outbox)


async def test_a_takeover_records_what_just_breached_first(source, clock, monkeypatch) -> None:
    monkeypatch.setattr("sla_monitor.daemon.TAKEOVER_CHUNK", 1)
    store = MemoryStore()
    for n in range(20):  # breached before the standby started (and recorded by no one)
        source.put(replace(ticket(str(n)), created_at=T0 - timedelta(minutes=60)))
    source.put(ticket("late"))  # breaches at 60
    leads = [False]
    standby = replica(source, store, clock, leads)
    await standby.poll_once()
    clock.set(59)
    await standby.refresh_due()
    clock.set(61)
    await standby.refresh_due()  # judged as a standby: discarded
    recorded: list[list[str]] = []
    record = store.record

    async def noting(outcomes, watermark, escalations=None, updates=None):  # type: ignore[no-untyped-def]
        recorded.append([o.ticket_id for o in outcomes])
        return await record(outcomes, watermark, escalations, updates)

    store.record = noting  # type: ignore[method-assign]
    leads[0] = True
    standby.take_over()
    await standby.poll_once()
    assert recorded[0] == ["late"]

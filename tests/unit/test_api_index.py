"""Tracker.listing: the tracked tickets by state, clock, priority and queue, soonest deadline
first, paged, from the index (checked against evaluating every ticket)."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

from sla_monitor.engine import Clock, ClockState, EventKind, PolicySet, Ticket, TicketEvent
from sla_monitor.tracker import NO_DEADLINE, Listed, Tracker, _SortedDeadlines

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=3)
QUEUES = ("support", "billing", "sales")
PRIORITIES = ("urgent", "high", "normal", "low")


def make(ticket_id: int, rng: random.Random) -> Ticket:
    created = T0 + timedelta(minutes=rng.randrange(0, 180))
    events: list[TicketEvent] = []
    if rng.random() < 0.3:
        events.append(TicketEvent(created + timedelta(minutes=5), EventKind.PUBLIC_REPLY))
    if rng.random() < 0.2:
        events.append(
            TicketEvent(created + timedelta(minutes=6), EventKind.STATUS_CHANGE, "pending")
        )
    return Ticket(
        ticket_id=str(ticket_id),
        created_at=created,
        queue=rng.choice(QUEUES),
        initial_status="new",
        initial_priority=rng.choice(PRIORITIES),
        subject=f"ticket {ticket_id}",
        events=tuple(events),
    )


def filled(count: int = 300) -> Tracker:
    rng = random.Random(7)
    tracker = Tracker(PolicySet())
    for index in range(count):
        tracker.update(make(index, rng), NOW)
    return tracker


def expected(
    tracker: Tracker,
    states: set[str] | None = None,
    clocks: set[str] | None = None,
    priority: str | None = None,
    queue: str | None = None,
) -> list[tuple[int, str]]:
    """What the listing must return, computed by evaluating every tracked ticket."""
    rows = []
    for evaluation in tracker.evaluations():
        if priority is not None and evaluation.priority != priority:
            continue
        if queue is not None and evaluation.queue != queue:
            continue
        deadlines = [
            NO_DEADLINE
            if status.deadline is None
            else (status.deadline - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
            for clock, status in evaluation.clocks.items()
            if not status.stopped
            and (states is None or status.state.value in states)
            and (clocks is None or clock.value in clocks)
        ]
        if deadlines:
            rows.append((min(deadlines), evaluation.ticket_id))
    return sorted(rows)


def keys(listed: list[Listed]) -> list[tuple[int, str]]:
    return [(item.deadline, item.ticket_id) for item in listed]


def test_listing_matches_evaluating_every_ticket() -> None:
    tracker = filled()
    for filters in (
        {},
        {"states": {"at_risk", "breached"}},
        {"states": {"breached"}, "clocks": {"first_response"}},
        {"clocks": {"resolution", "update"}},
        {"states": {"paused"}},
        {"priority": "urgent", "queue": "billing"},
        {"clocks": {"update"}, "queue": "sales"},
    ):
        want = expected(tracker, **filters)  # type: ignore[arg-type]
        assert want, filters  # every case selects something
        assert keys(tracker.listing(limit=10_000, **filters)) == want  # type: ignore[arg-type]


def test_pages_follow_each_other_without_gaps_or_repeats() -> None:
    tracker = filled()
    seen: list[tuple[int, str]] = []
    after = None
    while True:
        page = tracker.listing(states={"at_risk", "breached"}, after=after, limit=7)
        if not page:
            break
        seen += keys(page)
        after = (page[-1].deadline, page[-1].ticket_id)
    assert seen == expected(tracker, states={"at_risk", "breached"})


def test_the_index_follows_updates_resolutions_and_forgetting() -> None:
    tracker = filled(50)
    breached = [item.ticket_id for item in tracker.listing(states={"breached"}, limit=100)]
    assert breached
    resolved = tracker.ticket(breached[0])
    assert resolved is not None
    tracker.update(
        Ticket(
            **{
                **{f: getattr(resolved, f) for f in ("ticket_id", "created_at", "queue")},
                "initial_status": "resolved",
                "initial_priority": resolved.initial_priority,
            }
        ),
        NOW,
    )
    tracker.forget(breached[1])
    left = [item.ticket_id for item in tracker.listing(states={"breached"}, limit=100)]
    assert left == breached[2:]
    assert keys(tracker.listing(limit=1000)) == expected(tracker)


def test_items_carry_the_matching_clocks_with_their_deadlines() -> None:
    tracker = Tracker(PolicySet())
    tracker.update(Ticket("1", T0, "support", "new", "high", "Hi"), T0 + timedelta(minutes=50))
    (item,) = tracker.listing(states={"at_risk"})
    assert item.subject == "Hi" and item.priority == "high"
    assert item.clocks == (
        (Clock.FIRST_RESPONSE.value, ClockState.AT_RISK.value, T0 + timedelta(hours=1)),
    )
    assert tracker.listing(states={"breached"}) == []


def test_a_folded_queue_is_filtered_by_the_tickets_own_queue() -> None:
    tracker = Tracker(PolicySet())
    tracker.queue_label = lambda queue: queue if queue == "support" else "other"
    for ticket_id, queue in (("1", "support"), ("2", "billing"), ("3", "sales")):
        tracker.update(Ticket(ticket_id, T0, queue, "new", "high"), NOW)
    assert [item.ticket_id for item in tracker.listing(queue="billing")] == ["2"]
    assert [item.ticket_id for item in tracker.listing(queue="support")] == ["1"]


def test_the_sorted_chunks_agree_with_a_sorted_list_through_splits_and_removals() -> None:
    rng = random.Random(3)
    entries = _SortedDeadlines()
    model: list[tuple[int, str]] = []
    for step in range(6000):
        if model and rng.random() < 0.3:
            pair = model.pop(rng.randrange(len(model)))
            entries.remove(*pair)
        else:
            pair = (rng.randrange(50), f"t{step}")  # many equal deadlines
            entries.add(*pair)
            model.append(pair)
    model.sort()
    assert list(entries.since(None)) == model
    assert len(entries.lasts) > 2  # it did split
    for cut in (model[0], model[len(model) // 2], model[-1], (25, ""), (-1, "")):
        assert list(entries.since(cut)) == [pair for pair in model if pair > cut]
    for pair in model:
        entries.remove(*pair)
    assert not entries


def test_the_index_is_built_at_the_first_listing_and_kept_after() -> None:
    early = Tracker(PolicySet())
    early.listing()  # built while empty, then maintained by every update
    late = filled(200)
    assert late._by_key is None  # nothing paid per update while the API is not asked
    rng = random.Random(7)
    for index in range(200):
        early.update(make(index, rng), NOW)
    for tracker in (early, late):
        assert keys(tracker.listing(limit=1000)) == expected(tracker)
    assert late._by_key is not None
    assert keys(late.listing(states={"breached"}, limit=1000)) == keys(
        early.listing(states={"breached"}, limit=1000)
    )


async def test_a_stepwise_build_yields_and_takes_changes_made_meanwhile() -> None:
    """prepare_listing builds the index a step at a time; tickets updated, resolved, forgotten
    and added while it runs are listed as they are at its end, as a synchronous build would."""
    tracker = filled(600)
    rng = random.Random(11)
    turns = 0

    async def meanwhile() -> None:
        nonlocal turns
        while tracker._building is not None or turns == 0:
            turns += 1
            ticket_id = rng.randrange(0, 700)  # some tracked, some new
            action = rng.random()
            if action < 0.2:
                tracker.forget(str(ticket_id))
            elif action < 0.3:
                tracker.update(
                    Ticket(
                        ticket_id=str(ticket_id),
                        created_at=T0,
                        queue="support",
                        initial_status="resolved",
                        initial_priority="normal",
                    ),
                    NOW,
                )
            else:
                tracker.update(make(ticket_id, rng), NOW + timedelta(minutes=turns))
            await asyncio.sleep(0)

    await asyncio.gather(tracker.prepare_listing(step=25), meanwhile())
    assert turns > 10  # the build gave the loop back between its steps
    for filters in ({}, {"states": {"at_risk", "breached"}}, {"clocks": {"resolution"}}):
        listed = keys(tracker.listing(**filters, limit=10_000))  # type: ignore[arg-type]
        assert listed == expected(tracker, **filters)  # type: ignore[arg-type]
    # Kept after: updates go on into the built index.
    tracker.update(make(5, rng), NOW)
    assert keys(tracker.listing(limit=10_000)) == expected(tracker)


async def test_concurrent_requests_share_one_stepwise_build() -> None:
    tracker = filled(200)
    await asyncio.gather(*(tracker.prepare_listing(step=10) for _ in range(5)))
    index = tracker._by_key
    assert index is not None
    await tracker.prepare_listing()
    assert tracker._by_key is index
    assert keys(tracker.listing(limit=1000)) == expected(tracker)


async def test_a_stepwise_build_with_steps_of_several_chunks_equals_a_synchronous_one() -> None:
    stepwise, synchronous = filled(3000), filled(3000)
    await stepwise.prepare_listing(step=1000)  # four sorted runs, merged four chunks a step
    for filters in ({}, {"states": {"breached"}}, {"priority": "urgent"}):
        assert keys(stepwise.listing(**filters, limit=5000)) == keys(  # type: ignore[arg-type]
            synchronous.listing(**filters, limit=5000)  # type: ignore[arg-type]
        )

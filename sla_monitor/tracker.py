"""The open tickets the daemon follows, their latest evaluation and when each changes next.

Synchronous and I/O free: the daemon feeds it tickets and the time, it answers with evaluations
and keeps the open-ticket counts that the gauges export. Re-evaluation is driven by a timer heap
so an idle ticket costs nothing until its next at-risk or deadline instant.

Memory is what limits how many open tickets one daemon follows, so a tracked ticket is kept
small: the ticket packed into bytes without the events the engine never reads, the instant it
was judged (the evaluation itself is recomputed on demand: the engine is deterministic), its
gauge keys (shared tuples), its next timer (an integer, microseconds since the epoch), and one
bytes object holding its clocks' deadlines then 64-bit fingerprints of the outcomes already
recorded.

For the HTTP API's listing, each ticket also keeps its clocks' deadlines packed beside its
gauge keys, and the tracker indexes ticket ids by their (shared) gauge keys: a query by state,
clock, priority or queue picks the few matching gauge combinations, then reads the deadlines
of their tickets only, and evaluates nothing. The index is built at the first listing (from
the packed deadlines, sorted once: no evaluation) and maintained from then on, so a daemon
whose API is never asked pays neither its memory nor its upkeep in every update.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import struct
from array import array
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Final

from sla_monitor.engine import (
    Clock,
    ClockState,
    EventKind,
    PolicySet,
    StatusCategory,
    Ticket,
    TicketEvaluation,
    evaluate_ticket,
)
from sla_monitor.engine.clocks import Breach, Completion
from sla_monitor.engine.ledger import LedgerEntry, ledger_of
from sla_monitor.packed import TicketPacker
from sla_monitor.records import TicketOutcomes

GaugeKey = tuple[str, str, str, str]  # clock, state, priority, queue label
# The gauge key of a ticket paused longer than its policy's max_pause (no clock: the ticket's).
PAUSED_TOO_LONG = ("", "paused_too_long")
# The events evaluate_ticket reads; internal notes change no clock. Customer messages open
# next_reply windows (kept whatever the policies, so that a reload turning it on has them).
CLOCK_EVENTS = frozenset(
    {
        EventKind.CUSTOMER_MESSAGE,
        EventKind.PUBLIC_REPLY,
        EventKind.AUTOMATIC_UPDATE,
        EventKind.STATUS_CHANGE,
        EventKind.PRIORITY_CHANGE,
    }
)


# A tracked ticket is a plain tuple of strings, bytes and datetimes: the garbage collector
# untracks such tuples, so a million of them add nothing to a full collection (as slotted
# objects or named tuples they made each full collection a pause of ~0.7 s at 1 M tickets).
_Tracked = tuple[
    str,  # ticket id
    str,  # subject
    bytes | Ticket,  # TicketPacker.pack of the ticket without the events no clock reads
    datetime,  # when it was judged; usually one object shared by a whole batch
    tuple[GaugeKey, ...],  # its gauge keys; shared: one tuple per distinct combination
    int | None,  # its evaluation's next_transition, in microseconds since the epoch
    # Per gauge key, the deadline of its clock (microseconds since the epoch), then the 64-bit
    # fingerprints of the outcomes confirmed as recorded: one bytes object, not two.
    bytes,
    datetime | None,  # the ledger is recorded up to this instant, for the history tracked
]
_SUBJECT: Final = 1
_PACKED: Final = 2
_EVALUATED_AT: Final = 3
_GAUGES: Final = 4
_DUE: Final = 5
_CLOCKS: Final = 6
_LEDGER_THROUGH: Final = 7
# A clock without a deadline (paused before reaching its target) sorts after every other.
NO_DEADLINE: Final = 2**63 - 1
_DEADLINE = struct.Struct("<q")
_ARRAYS = [struct.Struct(f"<{n}q") for n in range(8)]
_CHUNK = 256  # pairs per chunk of a _SortedDeadlines (up to twice as many before a split)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Listed:
    """A tracked ticket as the listing finds it: its soonest deadline among the clocks that
    matched (NO_DEADLINE: none), and those clocks as (clock, state, deadline or None)."""

    deadline: int
    ticket_id: str
    subject: str
    priority: str
    clocks: tuple[tuple[str, str, datetime | None], ...]


def deadline_at(micros: int) -> datetime | None:
    return None if micros == NO_DEADLINE else _EPOCH + micros * _MICROSECOND


class Tracker:
    """Open tickets by id. ``update`` raises engine TicketError for a ticket it cannot judge."""

    def __init__(self, policies: PolicySet) -> None:
        self.policies = policies
        self._tracked: dict[str, _Tracked] = {}
        self._timers: list[tuple[int, str]] = []  # (due in microseconds, ticket id)
        # Non-zero counts only: a priority or queue whose last open ticket leaves is gone, so
        # what the gauge reads is bounded by the open tickets, not by every queue ever seen.
        self.counts: Counter[GaugeKey] = Counter()
        # The queue as counted; Metrics sets it, before the first update, to its bounded
        # labels, so counts (and the shared gauge keys) stay bounded by them too.
        self.queue_label: Callable[[str], str] = _same
        # Open tickets whose update clock ran out: candidates for a progress update.
        self.owing: set[str] = set()
        # True once every open ticket has been read into it (the daemon's first sync): before,
        # a ticket missing from it may simply not have been read yet.
        self.complete = False
        self._shared: dict[tuple[GaugeKey, ...], tuple[GaugeKey, ...]] = {}
        # The listing index: per gauge key of a clock, its tickets by that clock's deadline;
        # None until the first listing.
        self._by_key: dict[GaugeKey, _SortedDeadlines] | None = None
        # While prepare_listing builds it: the build's completion, and the tickets changed
        # meanwhile (taken as they are when the build ends).
        self._building: asyncio.Future[None] | None = None
        self._dirty: set[str] | None = None
        self._stale: list[tuple[GaugeKey, int, str]] = []
        self._packer = TicketPacker()

    def __len__(self) -> int:
        return len(self._tracked)

    def __contains__(self, ticket_id: object) -> bool:
        return ticket_id in self._tracked

    def evaluation(self, ticket_id: str) -> TicketEvaluation | None:
        """The latest evaluation of a tracked ticket (recomputed: the same as it was)."""
        tracked = self._tracked.get(ticket_id)
        if tracked is None:
            return None
        return evaluate_ticket(self._unpack(tracked), self.policies, tracked[_EVALUATED_AT])

    def ids(self) -> set[str]:
        return set(self._tracked)

    def tickets(self) -> list[Ticket]:
        return [self._unpack(tracked) for tracked in self._tracked.values()]

    def evaluations(self) -> list[TicketEvaluation]:
        return [
            evaluate_ticket(self._unpack(tracked), self.policies, tracked[_EVALUATED_AT])
            for tracked in self._tracked.values()
        ]

    def unchanged(self, ticket: Ticket) -> bool:
        """True when ``ticket`` is tracked as it is, up to events no clock reads: judging it
        again would change nothing but the instant, and the timers cover what time changes."""
        tracked = self._tracked.get(ticket.ticket_id)
        if tracked is None or tracked[_SUBJECT] != ticket.subject:
            return False
        compact = _compact(ticket)
        if compact.events and compact.events[-1].at > tracked[_EVALUATED_AT]:
            return False  # an event stamped after it was judged: not yet seen by the engine
        return self._packer.pack(compact) == tracked[_PACKED]

    def update(self, ticket: Ticket, now: datetime) -> TicketEvaluation:
        """Evaluates a new or changed ticket; a resolved one is judged and then forgotten."""
        evaluation = evaluate_ticket(ticket, self.policies, now)
        previous = self._tracked.get(ticket.ticket_id)
        compact = _compact(ticket)
        packed = self._packer.pack(compact)
        through = None
        if previous is not None:
            self._count(previous[_GAUGES], -1)
            self._index(previous, -1)
            through = previous[_LEDGER_THROUGH]
            # Changed: what was recorded still holds only if its history up to then did.
            if (
                through is not None
                and packed != previous[_PACKED]
                and not _same_until(self._unpack(previous), ticket, through)
            ):
                through = None
        self.owing.discard(ticket.ticket_id)
        if evaluation.category is StatusCategory.RESOLVED:
            self._tracked.pop(ticket.ticket_id, None)
            return evaluation
        update = evaluation.clocks.get(Clock.UPDATE)
        if update is not None and update.state is ClockState.BREACHED and not update.stopped:
            self.owing.add(ticket.ticket_id)
        gauges = self._gauges(evaluation)
        transition = evaluation.next_transition
        if compact.events and compact.events[-1].at > now:
            # An event stamped after now (a clock ahead of ours) is seen when its time comes:
            # the timer, not a re-read of the watermark lag (which skips unchanged tickets).
            coming = next(e.at for e in compact.events if e.at > now)
            transition = coming if transition is None else min(transition, coming)
        due = None if transition is None else _micros(transition)
        clocks = _deadlines(evaluation, gauges)
        tracked: _Tracked = (
            ticket.ticket_id,
            ticket.subject,
            packed,
            now,
            gauges,
            due,
            clocks + _recorded(previous) if previous else clocks,
            through,
        )
        self._tracked[ticket.ticket_id] = tracked
        self._count(gauges, +1)
        self._index(tracked, +1)
        if due is not None:
            heapq.heappush(self._timers, (due, ticket.ticket_id))
        return evaluation

    def refresh_due(
        self, now: datetime, on_error: Callable[[str, Exception], None] | None = None
    ) -> list[TicketEvaluation]:
        """Re-evaluates every ticket whose next transition is at or before ``now``.

        A ticket whose evaluation raises is forgotten and handed to ``on_error``, so one
        ticket can never stop the others' timers (without ``on_error`` the error propagates).
        """
        refreshed: list[TicketEvaluation] = []
        limit = _micros(now)
        while self._timers and self._timers[0][0] <= limit:
            due, ticket_id = heapq.heappop(self._timers)
            tracked = self._tracked.get(ticket_id)
            if tracked is None or tracked[_DUE] != due:
                continue  # stale timer: the ticket changed or left since it was set
            try:
                refreshed.append(self.update(self._unpack(tracked), now))
            except Exception as error:
                if on_error is None:
                    raise
                self.forget(ticket_id)
                on_error(ticket_id, error)
        return refreshed

    def next_due(self) -> datetime | None:
        while self._timers:
            due, ticket_id = self._timers[0]
            tracked = self._tracked.get(ticket_id)
            if tracked is not None and tracked[_DUE] == due:
                return _EPOCH + due * _MICROSECOND
            heapq.heappop(self._timers)
        return None

    def ledger(
        self, evaluation: TicketEvaluation, ticket: Ticket | None = None
    ) -> tuple[LedgerEntry, ...]:
        """The ledger entries of ``evaluation`` (of ``ticket``, by default the one tracked)
        not known to be recorded: derived again, but only those after the instant up to which
        the ledger is recorded for this very history (all of them for a new ticket, a
        resolved one, or one whose history changed before that instant)."""
        tracked = self._tracked.get(evaluation.ticket_id)
        if ticket is None:
            if tracked is None:
                return ()
            ticket = self._unpack(tracked)
        since = None if tracked is None else tracked[_LEDGER_THROUGH]
        return ledger_of(ticket, self.policies, evaluation.evaluated_at, since)

    def unrecorded(
        self, evaluation: TicketEvaluation, ledger: tuple[LedgerEntry, ...] = ()
    ) -> TicketOutcomes | None:
        """The breaches and completions of ``evaluation`` not yet confirmed as recorded, with
        its ``ledger`` entries (``Tracker.ledger``)."""
        tracked = self._tracked.get(evaluation.ticket_id)
        done = set() if tracked is None else set(_FINGERPRINTS.iter_unpack(_recorded(tracked)))
        breaches = tuple(b for b in evaluation.breaches if _breach_key(b) not in done)
        completions = tuple(c for c in evaluation.completions if _completion_key(c) not in done)
        if not breaches and not completions and not ledger:
            return None
        return TicketOutcomes(
            evaluation.ticket_id,
            evaluation.priority,
            evaluation.queue,
            breaches,
            completions,
            customer=evaluation.customer,
            organization=evaluation.organization,
            policy=evaluation.policy,
            ledger=ledger,
            ledger_through=evaluation.evaluated_at,
        )

    def mark_recorded(self, outcomes: TicketOutcomes) -> None:
        tracked = self._tracked.get(outcomes.ticket_id)
        if tracked is None:
            return
        clocks = tracked[_CLOCKS] + b"".join(
            [_FINGERPRINTS.pack(*_breach_key(b)) for b in outcomes.breaches]
            + [_FINGERPRINTS.pack(*_completion_key(c)) for c in outcomes.completions]
        )
        # Every entry up to ``ledger_through`` of the history tracked now is recorded or still
        # waits (the judge keeps waiting entries until recorded, and a changed history hands
        # over its whole ledger): later derivations need only what comes after.
        through = tracked[_LEDGER_THROUGH]
        if outcomes.ledger_through is not None and (
            through is None or outcomes.ledger_through > through
        ):
            through = outcomes.ledger_through
        self._tracked[outcomes.ticket_id] = (*tracked[:_CLOCKS], clocks, through)

    def ticket(self, ticket_id: str) -> Ticket | None:
        tracked = self._tracked.get(ticket_id)
        return None if tracked is None else self._unpack(tracked)

    def forget(self, ticket_id: str) -> None:
        self.owing.discard(ticket_id)
        tracked = self._tracked.pop(ticket_id, None)
        if tracked is not None:
            self._count(tracked[_GAUGES], -1)
            self._index(tracked, -1)

    def listing(
        self,
        states: Collection[str] | None = None,
        clocks: Collection[str] | None = None,
        priority: str | None = None,
        queue: str | None = None,
        after: tuple[int, str] | None = None,
        limit: int = 50,
    ) -> list[Listed]:
        """Tracked tickets with a running or paused clock that matches every filter given,
        soonest deadline of their matching clocks first (then by id), from the first one
        after ``after`` (a ``(deadline, ticket_id)`` of a previous page), at most ``limit``.
        Read from the index, as of each ticket's latest evaluation (the timers re-evaluate a
        ticket when its state changes): nothing is evaluated, and only the tickets up to the
        page's end are read."""
        label = None if queue is None else self.queue_label(queue)
        by_key = self._listing_index()
        matching = {
            key
            for key in by_key
            if (states is None or key[1] in states)
            and (clocks is None or key[0] in clocks)
            and (priority is None or key[2] == priority)
            and (label is None or key[3] == label)
        }
        # A folded queue label stands for several queues: check the ticket's own.
        exact = queue is None or label == queue
        merged = heapq.merge(*(by_key[key].since(after) for key in matching))
        listed: list[Listed] = []
        previous = None
        for pair in merged:
            if len(listed) >= limit:
                break
            if pair == previous:
                continue  # two clocks of one ticket with the same deadline (or none)
            previous = pair
            deadline, ticket_id = pair
            tracked = self._tracked[ticket_id]
            gauges, deadlines = tracked[_GAUGES], tracked[_CLOCKS]
            found = [
                (gauge[0], gauge[1], _DEADLINE.unpack_from(deadlines, index * _DEADLINE.size)[0])
                for index, gauge in enumerate(gauges)
                if gauge in matching
            ]
            # Each matching clock of a ticket is in the merge: it is listed at the first.
            if deadline != min(d for _, _, d in found):
                continue
            if not exact and self._unpack(tracked).queue != queue:
                continue
            listed.append(
                Listed(
                    deadline,
                    ticket_id,
                    tracked[_SUBJECT],
                    gauges[0][2],
                    tuple((clock, state, deadline_at(d)) for clock, state, d in found),
                )
            )
        return listed

    async def prepare_listing(self, step: int = 10_000) -> None:
        """Builds the listing index if it is not built, about ``step`` pairs at a time,
        yielding to the event loop between steps: at 1 M tracked tickets a build in one go
        held the loop (polls, timers, deliveries) for seconds. Each gauge key's pairs are
        sorted in runs of ``step`` and merged into the index step by step. Tickets that
        change meanwhile are noted and taken as they are at the end. The HTTP API and the
        board call this before listing; concurrent callers wait for one build."""
        if self._by_key is not None:
            return
        if self._building is not None:
            await asyncio.shield(self._building)
            return
        building = asyncio.get_running_loop().create_future()
        self._building, self._dirty, self._stale = building, set(), []
        try:
            pairs: dict[GaugeKey, list[tuple[int, str]]] = {}
            ids = list(self._tracked)
            for start in range(0, len(ids), step):
                for ticket_id in ids[start : start + step]:
                    tracked = self._tracked.get(ticket_id)
                    if tracked is not None:
                        for key, deadline, _ in _clock_deadlines(tracked):
                            pairs.setdefault(key, []).append((deadline, ticket_id))
                await asyncio.sleep(0)
            del ids
            by_key: dict[GaugeKey, _SortedDeadlines] = {}
            for key, items in pairs.items():
                runs = []
                for start in range(0, len(items), step):
                    runs.append(sorted(items[start : start + step]))
                    await asyncio.sleep(0)
                items.clear()  # the runs hold the pairs now
                entries = by_key[key] = _SortedDeadlines()
                merged = heapq.merge(*runs)
                per_step = range(max(1, step // _CHUNK))
                while chunks := [c for _ in per_step if (c := list(islice(merged, _CHUNK)))]:
                    entries.extend(chunks)
                    await asyncio.sleep(0)
                while runs:  # freeing a million pairs at once held the loop too
                    runs.pop().clear()
                    await asyncio.sleep(0)
            if self._by_key is None:  # not built meanwhile by a synchronous listing
                self._settle(by_key, self._dirty, self._stale)
                self._by_key = by_key
        finally:
            self._building, self._dirty, self._stale = None, None, []
            building.set_result(None)

    def _settle(
        self,
        by_key: dict[GaugeKey, _SortedDeadlines],
        dirty: set[str],
        stale: list[tuple[GaugeKey, int, str]],
    ) -> None:
        """Brings an index built while tickets changed up to date: every pair a changed
        ticket had (``stale``: taken out meanwhile) or has now goes, then it is added as it
        is tracked now."""
        current = [
            entry
            for ticket_id in dirty
            if (tracked := self._tracked.get(ticket_id)) is not None
            for entry in _clock_deadlines(tracked)
        ]
        for key, deadline, ticket_id in (*stale, *current):
            entries = by_key.get(key)
            if entries is not None:
                entries.discard(deadline, ticket_id)
        for key, deadline, ticket_id in current:
            by_key.setdefault(key, _SortedDeadlines()).add(deadline, ticket_id)
        for key in [key for key, entries in by_key.items() if not entries]:
            del by_key[key]

    def _listing_index(self) -> dict[GaugeKey, _SortedDeadlines]:
        """The listing index, built from every tracked ticket's packed deadlines at the
        first call: one sort per gauge key."""
        if self._by_key is None:
            pairs: dict[GaugeKey, list[tuple[int, str]]] = {}
            for tracked in self._tracked.values():
                for key, deadline, ticket_id in _clock_deadlines(tracked):
                    pairs.setdefault(key, []).append((deadline, ticket_id))
            self._by_key = {key: _SortedDeadlines.of(sorted(items)) for key, items in pairs.items()}
        return self._by_key

    def _index(self, tracked: _Tracked, delta: int) -> None:
        by_key = self._by_key
        if by_key is None:
            # Not built yet: the first listing reads every ticket as it is then (or, during
            # prepare_listing, the ticket is taken as it is when the build ends).
            if self._dirty is not None:
                self._dirty.add(tracked[0])
                if delta < 0:
                    self._stale.extend(_clock_deadlines(tracked))
            return
        for key, deadline, ticket_id in _clock_deadlines(tracked):
            if delta > 0:
                by_key.setdefault(key, _SortedDeadlines()).add(deadline, ticket_id)
            else:
                entries = by_key[key]
                entries.remove(deadline, ticket_id)
                if not entries:
                    del by_key[key]

    def _unpack(self, tracked: _Tracked) -> Ticket:
        ticket_id, subject, packed = tracked[:3]
        return self._packer.unpack(ticket_id, subject, packed)

    def _gauges(self, evaluation: TicketEvaluation) -> tuple[GaugeKey, ...]:
        # A stopped clock is no longer open work; completions count it.
        queue = self.queue_label(evaluation.queue)
        gauges = tuple(
            (clock.value, status.state.value, evaluation.priority, queue)
            for clock, status in evaluation.clocks.items()
            if not status.stopped
        )
        if evaluation.paused_too_long:
            gauges += ((*PAUSED_TOO_LONG, evaluation.priority, queue),)
        return self._shared.setdefault(gauges, gauges)

    def _count(self, gauges: tuple[GaugeKey, ...], delta: int) -> None:
        for key in gauges:
            self.counts[key] += delta
            if self.counts[key] == 0:
                del self.counts[key]


class _SortedDeadlines:
    """(deadline, ticket id) pairs in order, in chunks of at most 2 * _CHUNK: adding and
    removing cost O(log n + _CHUNK) whatever the size, and a pair costs 16 bytes (a 64-bit
    deadline in an array, a reference to the id already held by the tracker)."""

    __slots__ = ("deadlines", "ids", "lasts")

    def __init__(self) -> None:
        self.deadlines: list[array[int]] = []
        self.ids: list[list[str]] = []
        self.lasts: list[tuple[int, str]] = []  # each chunk's last pair

    def __bool__(self) -> bool:
        return bool(self.lasts)

    @classmethod
    def of(cls, pairs: list[tuple[int, str]]) -> _SortedDeadlines:
        """The pairs, sorted already, in chunks of _CHUNK."""
        entries = cls()
        entries.extend([pairs[start : start + _CHUNK] for start in range(0, len(pairs), _CHUNK)])
        return entries

    def _position(self, chunk: int, deadline: int, ticket_id: str) -> int:
        deadlines, ids = self.deadlines[chunk], self.ids[chunk]
        position = bisect.bisect_left(deadlines, deadline)
        while position < len(ids) and deadlines[position] == deadline and ids[position] < ticket_id:
            position += 1
        return position

    def add(self, deadline: int, ticket_id: str) -> None:
        if not self.lasts:
            self.deadlines.append(array("q", [deadline]))
            self.ids.append([ticket_id])
            self.lasts.append((deadline, ticket_id))
            return
        chunk = min(bisect.bisect_left(self.lasts, (deadline, ticket_id)), len(self.lasts) - 1)
        position = self._position(chunk, deadline, ticket_id)
        deadlines, ids = self.deadlines[chunk], self.ids[chunk]
        deadlines.insert(position, deadline)
        ids.insert(position, ticket_id)
        self.lasts[chunk] = (deadlines[-1], ids[-1])
        if len(ids) > 2 * _CHUNK:
            self.deadlines[chunk : chunk + 1] = [deadlines[:_CHUNK], deadlines[_CHUNK:]]
            self.ids[chunk : chunk + 1] = [ids[:_CHUNK], ids[_CHUNK:]]
            self.lasts[chunk : chunk + 1] = [
                (deadlines[_CHUNK - 1], ids[_CHUNK - 1]),
                self.lasts[chunk],
            ]

    def extend(self, chunks: list[list[tuple[int, str]]]) -> None:
        """Appends chunks of pairs that sort after every pair held, in order."""
        for chunk in chunks:
            self.deadlines.append(array("q", [deadline for deadline, _ in chunk]))
            self.ids.append([ticket_id for _, ticket_id in chunk])
            self.lasts.append(chunk[-1])

    def discard(self, deadline: int, ticket_id: str) -> None:
        """Removes the pair if it is held."""
        chunk = bisect.bisect_left(self.lasts, (deadline, ticket_id))
        if chunk == len(self.lasts):
            return
        position = self._position(chunk, deadline, ticket_id)
        deadlines, ids = self.deadlines[chunk], self.ids[chunk]
        if position < len(ids) and deadlines[position] == deadline and ids[position] == ticket_id:
            self.remove(deadline, ticket_id)

    def remove(self, deadline: int, ticket_id: str) -> None:
        chunk = bisect.bisect_left(self.lasts, (deadline, ticket_id))
        position = self._position(chunk, deadline, ticket_id)
        deadlines, ids = self.deadlines[chunk], self.ids[chunk]
        if ids[position] != ticket_id:  # the index is built with the same keys: a bug
            raise KeyError(ticket_id)
        del deadlines[position], ids[position]
        if ids:
            self.lasts[chunk] = (deadlines[-1], ids[-1])
        else:
            del self.deadlines[chunk], self.ids[chunk], self.lasts[chunk]

    def since(self, after: tuple[int, str] | None) -> Iterator[tuple[int, str]]:
        """The pairs after ``after`` (all for None), in order."""
        chunk, position = 0, 0
        if after is not None:
            chunk = bisect.bisect_right(self.lasts, after)
            if chunk < len(self.lasts):
                position = self._position(chunk, *after)
                ids = self.ids[chunk]
                if position < len(ids) and ids[position] == after[1]:
                    position += 1
        for index in range(chunk, len(self.lasts)):
            deadlines, ids = self.deadlines[index], self.ids[index]
            for offset in range(position if index == chunk else 0, len(ids)):
                yield deadlines[offset], ids[offset]


def _clock_deadlines(tracked: _Tracked) -> Iterator[tuple[GaugeKey, int, str]]:
    """Each gauge key of a clock of the tracked ticket, with that clock's deadline."""
    ticket_id, gauges, deadlines = tracked[0], tracked[_GAUGES], tracked[_CLOCKS]
    for index, key in enumerate(gauges):
        if key[0]:  # paused_too_long is the ticket's, not a clock's
            yield key, _DEADLINE.unpack_from(deadlines, index * _DEADLINE.size)[0], ticket_id


def _recorded(tracked: _Tracked) -> bytes:
    """The fingerprints of the tracked ticket's recorded outcomes (after its deadlines)."""
    return tracked[_CLOCKS][len(tracked[_GAUGES]) * _DEADLINE.size :]


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _deadlines(evaluation: TicketEvaluation, gauges: tuple[GaugeKey, ...]) -> bytes:
    """The deadline of each gauge key's clock, in the order of the keys."""
    clocks = evaluation.clocks  # keyed by Clock, a StrEnum: its value finds it
    values = []
    for key in gauges:
        status = clocks.get(key[0]) if key[0] else None  # type: ignore[call-overload]
        deadline = None if status is None else status.deadline
        values.append(NO_DEADLINE if deadline is None else (deadline - _EPOCH) // _MICROSECOND)
    return (
        _ARRAYS[len(values)].pack(*values)
        if len(values) < len(_ARRAYS)
        else b"".join(_DEADLINE.pack(value) for value in values)
    )


def _same(queue: str) -> str:
    return queue


def _same_until(old: Ticket, new: Ticket, moment: datetime) -> bool:
    """Whether two versions of a ticket had the same history up to ``moment`` (the ledger's
    entries up to it depend on nothing else; the subject is not part of it)."""
    if replace(old, events=(), subject="") != replace(new, events=(), subject=""):
        return False
    before = [e for e in _compact(old).events if e.at <= moment]
    return before == [e for e in _compact(new).events if e.at <= moment]


def _compact(ticket: Ticket) -> Ticket:
    """The ticket as kept in memory: only the events that move a clock."""
    if all(event.kind in CLOCK_EVENTS for event in ticket.events):
        return ticket
    return replace(ticket, events=tuple(e for e in ticket.events if e.kind in CLOCK_EVENTS))


# An outcome's identity as a 64-bit fingerprint: 8 bytes instead of a key string. The store
# records each outcome once whatever the tracker believes, so a collision (odds 2^-64) could
# only skip re-sending an outcome, and only within one process (string hashes are salted per
# process).
_FINGERPRINTS = struct.Struct("<q")


def _breach_key(breach: Breach) -> tuple[int]:
    return (hash((breach.clock, breach.key, True)),)


def _completion_key(completion: Completion) -> tuple[int]:
    return (hash((completion.clock, completion.key, False)),)

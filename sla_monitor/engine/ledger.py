"""The SLA ledger: every transition of a ticket's clocks up to ``now``, replayed in time order.

``derive_ledger`` walks each clock window (the same windows, status intervals, calendars and
open-time measure as ``clocks.evaluate_ticket``) forward through time and reports what
happened to it: ``started``, ``at_risk``, ``breached``, ``paused``, ``resumed``, ``met`` or
``stopped``, ``reopened`` and ``policy_changed``, each with its instant, the policy and
calendar in force then and the business seconds the clock had counted by then.

The ledger is *causal*: an entry at instant ``t`` depends only on the ticket's history up to
``t`` (the policy in force at ``t`` is the one for the priority at ``t``). So a ledger derived
at a later ``now`` from the same history holds every entry of one derived earlier, and an
append-only table keyed by each entry's ``identity`` records each transition exactly once,
however often (and after however many restarts) it is derived again. Pure, like the engine.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from itertools import pairwise

from sla_monitor.engine.clocks import (
    _FlatOpenTime,
    _OpenTime,
    _reply_windows,
    _Times,
    _until,
    _us,
    checked,
)
from sla_monitor.engine.model import Clock, EventKind, StatusCategory, Ticket
from sla_monitor.engine.policy import Policy, PolicySet, Reopen


class LedgerKind(StrEnum):
    """What happened to a clock window (docs/semantics.md, "The ledger")."""

    STARTED = "started"  # the window opened: creation, a reply (update), a customer message
    REOPENED = "reopened"  # the ticket left a resolved status while the window ran
    POLICY_CHANGED = "policy_changed"  # a priority change brought another policy
    RESUMED = "resumed"  # a pause ended: the clock counts again
    AT_RISK = "at_risk"  # the at-risk share of the target was reached
    BREACHED = "breached"  # the target was reached while the clock ran
    PAUSED = "paused"  # a status that does not count for this clock began
    MET = "met"  # the clock stopped within its target
    STOPPED = "stopped"  # the clock stopped after its breach, or with nothing owed any more


# The order of entries at one instant: the order in which they happen.
KIND_ORDER = tuple(LedgerKind)
_RANK = {kind: rank for rank, kind in enumerate(KIND_ORDER)}
_CLOCK_RANK = {clock: rank for rank, clock in enumerate(Clock)}


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One transition of one clock window. ``identity`` names it for ever: the same
    transition derived again (another ``now``, another process) has the same identity."""

    clock: Clock
    window_key: str  # the window's breach key: "" for the first, else its start instant
    kind: LedgerKind
    at: datetime
    policy: str  # in force at ``at`` (for policy_changed: the new one)
    calendar: str
    priority: str  # the ticket's priority at ``at``
    elapsed_seconds: float  # business seconds the window had counted by ``at``
    previous_policy: str | None = None  # policy_changed only: the policy before

    @property
    def identity(self) -> tuple[str, str, str, datetime]:
        return (self.clock.value, self.window_key, self.kind.value, self.at)


@dataclass(frozen=True, slots=True)
class _Window:
    clock: Clock
    key: str
    start: datetime
    first: LedgerKind  # started, or reopened (a restarted resolution cycle)
    stop: datetime | None = None  # where it stops other than by a resolution
    answered: bool = True  # False: its stop owes nothing (no completion)
    limit: datetime | None = None  # where it ends without an entry (the next cycle begins)


def derive_ledger(
    ticket: Ticket, policies: PolicySet, now: datetime, since: datetime | None = None
) -> tuple[LedgerEntry, ...]:
    """Every ledger entry of ``ticket`` at or before ``now`` (only those after ``since``, if
    given), ordered by instant. Raises TicketError for a ticket evaluate_ticket refuses."""
    return checked(ticket, policies, now, lambda t, p, n: ledger_of(t, p, n, since))


def ledger_of(
    ticket: Ticket, policies: PolicySet, now: datetime, since: datetime | None = None
) -> tuple[LedgerEntry, ...]:
    """derive_ledger of a ticket already judged at ``now`` (evaluate_ticket did not raise):
    without checking it again."""
    return _Ledger(ticket, policies, now, since).derive()


def ledger_order(entry: LedgerEntry) -> tuple[datetime, int, str, int]:
    """The order of a ticket's ledger: by instant, then clock, window and the order in which
    the entries of one instant happen (the state store reads it back in this order too)."""
    return (entry.at, _CLOCK_RANK[entry.clock], entry.window_key, _RANK[entry.kind])


class _Ledger:
    def __init__(
        self, ticket: Ticket, policies: PolicySet, now: datetime, since: datetime | None
    ) -> None:
        self.seen = seen = _until(ticket, now)
        self.policies = policies
        self.now = now
        self.since = since
        self.times = _Times(seen, policies, now)
        changes = [e for e in seen.events if e.kind is EventKind.PRIORITY_CHANGE]
        self.changed_at = [e.at for e in changes]
        self.priorities = [str(e.value) for e in changes]
        self.status_changes = sorted(
            {
                e.at
                for e in seen.events
                if e.kind is EventKind.STATUS_CHANGE and e.at > seen.created_at
            }
        )
        self._policies: dict[str, Policy] = {}

    def priority_at(self, moment: datetime) -> str:
        index = bisect.bisect_right(self.changed_at, moment) - 1
        return self.seen.initial_priority if index < 0 else self.priorities[index]

    def policy_at(self, moment: datetime) -> Policy:
        priority = self.priority_at(moment)
        found = self._policies.get(priority)
        if found is None:
            seen = self.seen
            found = self._policies[priority] = self.policies.policy_for(
                priority, seen.queue, seen.customer, seen.organization, seen.attributes
            )
        return found

    def derive(self) -> tuple[LedgerEntry, ...]:
        """The entries of every window (each has its own clock and key, and a walk never
        enters one transition twice: identities are unique), in ledger order."""
        since = self.since
        entries: list[LedgerEntry] = []
        for window in self.windows():
            end = window.stop if window.stop is not None else window.limit
            if since is not None and end is not None and end <= since:
                continue  # over before ``since``: nothing of it is wanted
            entries += self.walk(window)
        return tuple(sorted(entries, key=ledger_order))

    def windows(self) -> list[_Window]:
        """The clock windows as the evaluation has them (clocks.evaluate_ticket), except that
        whether a re-open restarts the resolution clock is the policy's in force then."""
        seen, intervals = self.seen, self.times.intervals
        created = seen.created_at
        replies = [e.at for e in seen.events if e.kind is EventKind.PUBLIC_REPLY]
        resolutions = [i.start for i in intervals if i.category is StatusCategory.RESOLVED]
        first_stop = min([*replies[:1], *resolutions[:1]], default=None)
        answered = first_stop is None or (bool(replies) and replies[0] == first_stop)
        windows = [
            _Window(Clock.FIRST_RESPONSE, "", created, LedgerKind.STARTED, first_stop, answered)
        ]

        restarts = [
            b.start
            for a, b in pairwise(intervals)
            if a.category is StatusCategory.RESOLVED
            and self.policy_at(b.start).reopen is Reopen.RESTART
        ]
        starts = [created, *restarts]
        for index, start in enumerate(starts):
            windows.append(
                _Window(
                    Clock.RESOLUTION,
                    "" if index == 0 else start.isoformat(),
                    start,
                    LedgerKind.STARTED if index == 0 else LedgerKind.REOPENED,
                    limit=starts[index + 1] if index + 1 < len(starts) else None,
                )
            )

        news = [
            e.at
            for e in seen.events
            if e.kind in (EventKind.PUBLIC_REPLY, EventKind.AUTOMATIC_UPDATE)
        ]
        updates = list(dict.fromkeys([created, *news]))
        for index, start in enumerate(updates):
            stop = updates[index + 1] if index + 1 < len(updates) else None
            windows.append(
                _Window(Clock.UPDATE, start.isoformat(), start, LedgerKind.STARTED, stop)
            )

        policies = self.policies
        if policies.default.next_reply_seconds is not None or any(
            rule.policy.next_reply_seconds is not None for rule in policies.rules
        ):
            for start, stop, replied in _reply_windows(seen.events, resolutions):
                windows.append(
                    _Window(
                        Clock.NEXT_REPLY,
                        start.isoformat(),
                        start,
                        LedgerKind.STARTED,
                        stop,
                        replied,
                    )
                )
        return windows

    def walk(self, window: _Window) -> list[LedgerEntry]:
        """The window's transitions, in the order they happen."""
        clock, start, now, since = window.clock, window.start, self.now, self.since
        end = min(x for x in (window.stop, window.limit, now) if x is not None)
        entries: list[LedgerEntry] = []
        policy = self.policy_at(start)
        measure = self.times.on(policy, clock)
        if (
            type(measure) is _FlatOpenTime
            and not self.changed_at
            and (policy.at_risk_ratio <= 1 or not _within(self.status_changes, start, end))
        ):
            return self.walk_flat(window, policy, measure, end)
        level = 0  # 1 at risk, 2 breached (never withdrawn)
        # When the policy in force puts the window at risk and over target: (level, instant
        # or None if not by now, amount, kind), computed once per policy.
        goals: list[tuple[int, datetime | None, int, LedgerKind]] | None = None

        def emit(
            kind: LedgerKind,
            at: datetime,
            previous: str | None = None,
            elapsed: int | None = None,
        ) -> None:
            if at > now or (since is not None and at <= since):
                return  # not yet; or wanted only after ``since``
            if policy.target(clock) is None and kind is not LedgerKind.POLICY_CHANGED:
                return  # the policy in force does not measure this clock
            entries.append(
                LedgerEntry(
                    clock,
                    window.key,
                    kind,
                    at,
                    policy.name,
                    policy.calendar.name,
                    self.priority_at(at),
                    (measure.between(start, at) if elapsed is None else elapsed) / 1e6,
                    previous,
                )
            )

        def stop_kind() -> LedgerKind:
            return LedgerKind.MET if level < 2 and window.answered else LedgerKind.STOPPED

        def thresholds(low: datetime, high: datetime, inclusive: bool) -> None:
            """At-risk and breach instants reached while the clock ran in [low, high)."""
            nonlocal level, goals
            if goals is None:
                target = policy.target(clock)
                goals = []
                if target is not None:
                    target_us = _us(target)
                    for rank, amount, kind in (
                        (1, round(target_us * policy.at_risk_ratio), LedgerKind.AT_RISK),
                        (2, target_us, LedgerKind.BREACHED),
                    ):
                        goals.append((rank, measure.reached(start, amount), amount, kind))
            for rank, reached, amount, kind in goals:
                if level >= rank:
                    continue
                if reached is None:
                    return
                # Reached before ``low``: under a policy that took effect at ``low``.
                elapsed = amount if reached >= low else None
                reached = max(reached, low)
                if reached < high or (inclusive and reached == high):
                    emit(kind, reached, elapsed=elapsed)
                    level = rank

        category = _category_at(measure, start)
        late = False
        emit(window.first, start)
        if category is StatusCategory.RESOLVED:
            # A next-reply window opened on a resolved ticket (a customer message after the
            # resolution) owes nothing while it stays resolved, as the evaluation judges it:
            # stopped then. A window still open is not "answered" yet, and calling it met now
            # would contradict a later derivation; a reply that comes while it is still
            # resolved meets it then (below), as the evaluation's completion does.
            late = window.clock is Clock.NEXT_REPLY and window.stop != start
            emit(LedgerKind.STOPPED if late else stop_kind(), start)
        elif category is StatusCategory.PAUSED:
            emit(LedgerKind.PAUSED, start)
        low = start
        moments = {end, *_within(self.status_changes, start, end)}
        moments.update(_within(self.changed_at, start, end))
        for moment in sorted(moments):
            if category is StatusCategory.OPEN:
                # A clock still running at its deadline is breached then; a stop at it (the
                # window's own, or a resolution) is met, as its completion is.
                stops = moment == window.stop or (
                    _category_at(measure, moment) is StatusCategory.RESOLVED
                )
                thresholds(low, moment, inclusive=not stops)
            if moment == window.stop:
                # Resolved, it stopped on resolving; unless replied to while still resolved.
                if category is not StatusCategory.RESOLVED or (late and window.answered):
                    emit(stop_kind(), moment)
                break
            if moment == window.limit:
                break
            low = moment
            new = self.policy_at(moment)
            if new is not policy:
                previous, policy, goals = policy, new, None
                measure = self.times.on(policy, clock)
                if policy.name != previous.name:
                    emit(LedgerKind.POLICY_CHANGED, moment, previous.name)
                target = policy.target(clock)
                if level == 1 and target is not None:
                    at_risk = round(_us(target) * policy.at_risk_ratio)
                    if measure.between(start, moment) < at_risk:
                        level = 0  # the new policy's target is looser: not at risk now
            new_category = _category_at(measure, moment)
            if new_category is not category:
                if new_category is StatusCategory.RESOLVED:
                    emit(stop_kind(), moment)
                else:
                    if category is StatusCategory.RESOLVED:
                        emit(LedgerKind.REOPENED, moment)
                    if new_category is StatusCategory.PAUSED:
                        emit(LedgerKind.PAUSED, moment)
                    elif category is StatusCategory.PAUSED:
                        emit(LedgerKind.RESUMED, moment)
                category = new_category
        else:  # still running at ``now``: a policy changed at ``now`` may put it over
            if category is StatusCategory.OPEN:
                thresholds(low, end, inclusive=True)
        return entries

    def walk_flat(
        self, window: _Window, policy: Policy, measure: _OpenTime, end: datetime
    ) -> list[LedgerEntry]:
        """``walk`` of the common window (the engine's fast path, clocks._FlatOpenTime): its
        clock's measure is one open interval and no priority ever changed: one policy
        throughout, nothing pauses, resolves or re-opens it, and the whole walk is one pass
        over at-risk, breach and stop. A status change within it (between open statuses)
        changes nothing then, as long as at-risk comes no later than the breach (an at-risk
        share above 1 with a status change inside takes the general walk, whose steps at each
        change then decide which of the two is reported). The same entries as the general
        walk (tests/unit/engine/test_ledger_fast_path.py holds the two equal)."""
        clock, start, now, since = window.clock, window.start, self.now, self.since
        target = policy.target(clock)
        if target is None or start > now:
            return []  # not measured by the policy in force; or not begun by now
        entries: list[LedgerEntry] = []
        key, name, calendar = window.key, policy.name, policy.calendar.name
        priority = self.seen.initial_priority  # no priority change: the initial throughout

        def emit(kind: LedgerKind, at: datetime, elapsed: int) -> None:
            if at <= now and (since is None or at > since):
                entries.append(
                    LedgerEntry(clock, key, kind, at, name, calendar, priority, elapsed / 1e6)
                )

        emit(window.first, start, measure.between(start, start))
        # A clock still running at its deadline is breached then; a stop at it is met.
        stops = end == window.stop
        level = 0
        target_us = _us(target)
        for rank, amount, kind in (
            (1, round(target_us * policy.at_risk_ratio), LedgerKind.AT_RISK),
            (2, target_us, LedgerKind.BREACHED),
        ):
            reached = measure.reached(start, amount)
            if reached is None:
                break
            elapsed = amount if reached >= start else measure.between(start, start)
            reached = max(reached, start)
            if reached < end or (not stops and reached == end):
                emit(kind, reached, elapsed)
                level = rank
        if stops:
            answered = level < 2 and window.answered
            kind = LedgerKind.MET if answered else LedgerKind.STOPPED
            emit(kind, end, measure.between(start, end))
        return entries


def _category_at(measure: _OpenTime, moment: datetime) -> StatusCategory:
    index = max(0, bisect.bisect_right(measure.starts, moment) - 1)
    return measure.intervals[index].category


def _within(instants: list[datetime], low: datetime, high: datetime) -> list[datetime]:
    """The sorted ``instants`` in (low, high]."""
    return instants[bisect.bisect_right(instants, low) : bisect.bisect_right(instants, high)]

"""Evaluates a ticket's SLA clocks at an instant ``now``.

Rules (docs/semantics.md states them for people):
- Clocks count business seconds of the policy's calendar while the ticket is in an *open*
  status; time in a paused or resolved status does not count. A policy's ``pause`` may name,
  per clock, the statuses that pause that clock instead of the paused ones (any status but a
  resolved one: an open status listed there pauses only that clock, and ``[]`` never pauses).
- first_response runs from creation to the first public staff reply. A ticket resolved
  without one has no first response: the clock is not applicable (no completion, absent from
  the clocks) unless it had already breached, and a breach is never withdrawn.
- resolution runs from creation and stops while the ticket is resolved; each resolution is a
  completion. With ``reopen = resume`` a re-open resumes the same clock (one breach per
  ticket); with ``restart`` a re-open starts a new cycle measured from the re-open instant
  (breach and completion per cycle, the first cycle keyed as under resume).
- update runs from creation, and again from every public staff reply or automatic progress
  update, while the ticket is not resolved; each closes one window (several at one instant
  close one window together), and a window's key is its start.
- next_reply (off unless the policy sets a target) runs from the oldest customer message not
  yet answered to the first public staff reply at or after it: a reply answers every message
  stamped at or before its instant, so messages before one reply (or at one instant) are one
  window, keyed by its start. A resolution before the reply ends the window without a
  completion (nothing was owed any more) but keeps a breach it already had.
- A ticket in a paused status continuously for longer than the policy's ``max_pause``
  (wall-clock time) is paused too long from that instant until it leaves the paused statuses.
- The policy is the one for the ticket's current priority and queue, measured from creation;
  a clock that breached under an earlier priority stays breached.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import TypeVar

from sla_monitor.engine.calendar_protocol import Calendar, ContinuousCalendar
from sla_monitor.engine.model import (
    BadRowReason,
    Clock,
    ClockState,
    EventKind,
    StatusCategory,
    Ticket,
    TicketEvent,
)
from sla_monitor.engine.policy import Policy, PolicySet, Reopen

_T = TypeVar("_T")

# How far a ticket's creation may lie after ``now`` (clocks of two hosts disagree a little);
# beyond it the row is wrong, not early.
CREATION_TOLERANCE = timedelta(seconds=60)
# The instants the engine computes with: no helpdesk ticket predates the Unix epoch, and
# calendar arithmetic must stay clear of datetime.max (year 9999).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
# The fast path for the common ticket (_FlatOpenTime); off only to check it against the
# general path.
FAST_PATH = True
_MICROSECOND = timedelta(microseconds=1)


class TicketError(ValueError):
    """A ticket the engine cannot judge; ``reason`` is a short code usable as a metric label."""

    def __init__(self, reason: BadRowReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class ClockStatus:
    """One clock of one ticket at ``now``.

    ``deadline`` is when the target is (or was) reached; None while paused before reaching it
    and for a clock that stopped within target. ``remaining_seconds`` is negative once over.
    ``overdue_at`` is when the policy's overdue share of the target (default 2x) is reached.
    """

    clock: Clock
    state: ClockState
    target_seconds: float
    elapsed_seconds: float
    remaining_seconds: float
    deadline: datetime | None
    at_risk_at: datetime | None
    breached_at: datetime | None
    started_at: datetime
    stopped_at: datetime | None
    running: bool
    overdue_at: datetime | None = None
    overdue: bool = False
    breach_due: datetime | None = None  # when a running clock will become breached
    # The latest instant the clock started running again after a pause or a resolution, up to
    # its breach (or now); and the latest instant the ticket was re-opened, up to now. A
    # re-entry into at-risk or breached after them is a new escalation episode.
    resumed_at: datetime | None = None
    reopened_at: datetime | None = None

    @property
    def stopped(self) -> bool:
        return self.stopped_at is not None


@dataclass(frozen=True, slots=True)
class Completion:
    """A clock that stopped: recorded once per ``key`` so a restart never counts it again."""

    clock: Clock
    key: str
    stopped_at: datetime
    met: bool
    elapsed_seconds: float


@dataclass(frozen=True, slots=True)
class Breach:
    """A clock crossing its target; recorded once per ``key`` and never withdrawn."""

    clock: Clock
    key: str
    breached_at: datetime


@dataclass(frozen=True, slots=True)
class TicketEvaluation:
    ticket_id: str
    policy: str
    priority: str
    queue: str
    status: str
    category: StatusCategory
    clocks: dict[Clock, ClockStatus]
    completions: tuple[Completion, ...]
    breaches: tuple[Breach, ...]
    evaluated_at: datetime
    subject: str = ""
    # While the ticket is in a paused status: since when, without a break; and when it is (or
    # was) paused too long under the policy's max_pause (None without a limit).
    paused_since: datetime | None = None
    pause_limit_at: datetime | None = None
    # Who the ticket is for (Ticket.customer, .organization): recorded with its outcomes.
    customer: str | None = None
    organization: str | None = None

    @property
    def paused_too_long(self) -> bool:
        return self.pause_limit_at is not None and self.pause_limit_at <= self.evaluated_at

    @property
    def next_transition(self) -> datetime | None:
        """The earliest future instant at which a running clock changes state, or the ticket
        becomes paused too long."""
        candidates = [self.pause_limit_at] if self.pause_limit_at is not None else []
        candidates += [
            moment
            for status in self.clocks.values()
            if status.running
            for moment in (
                status.at_risk_at,
                status.breach_due,
                status.overdue_at,
            )
            if moment is not None and moment > self.evaluated_at
        ]
        return min((c for c in candidates if c > self.evaluated_at), default=None)


@dataclass(frozen=True, slots=True)
class _Interval:
    start: datetime
    end: datetime
    category: StatusCategory


def validate_ticket(ticket: Ticket, policies: PolicySet, now: datetime | None = None) -> None:
    """Raises TicketError when the ticket cannot be judged (naive times, unknown values, ...);
    with ``now``, also when it was created later than ``now`` allows (see CREATION_TOLERANCE)."""
    _check_instant(ticket.created_at, "created_at")
    if ticket.created_at < EARLIEST:
        raise TicketError(
            BadRowReason.TIMESTAMP_OUT_OF_RANGE,
            f"created_at {ticket.created_at.isoformat()} is before {EARLIEST.year}",
        )
    if now is not None and ticket.created_at - now > CREATION_TOLERANCE:
        raise TicketError(
            BadRowReason.CREATED_IN_FUTURE,
            f"created_at {ticket.created_at.isoformat()} is after now ({now.isoformat()})",
        )
    if policies.statuses.category(ticket.initial_status) is None:
        raise TicketError(
            BadRowReason.UNKNOWN_STATUS, f"status {ticket.initial_status!r} is not mapped"
        )
    if ticket.initial_priority not in policies.priorities:
        raise TicketError(
            BadRowReason.UNKNOWN_PRIORITY, f"priority {ticket.initial_priority!r} is unknown"
        )
    for event in ticket.events:
        _check_instant(event.at, f"{event.kind} event time")
        if event.at < ticket.created_at:
            raise TicketError(
                BadRowReason.EVENT_BEFORE_CREATION,
                f"{event.kind} at {event.at.isoformat()} precedes creation "
                f"at {ticket.created_at.isoformat()}",
            )
        if event.kind is EventKind.STATUS_CHANGE and (
            event.value is None or policies.statuses.category(event.value) is None
        ):
            raise TicketError(BadRowReason.UNKNOWN_STATUS, f"status {event.value!r} is not mapped")
        if event.kind is EventKind.PRIORITY_CHANGE and event.value not in policies.priorities:
            raise TicketError(BadRowReason.UNKNOWN_PRIORITY, f"priority {event.value!r} is unknown")


def _check_instant(moment: datetime, what: str) -> None:
    # PostgreSQL's +/-infinity arrive as datetime.max/min (asyncpg drops their time zone).
    if moment.replace(tzinfo=None) in (datetime.max, datetime.min):
        raise TicketError(
            BadRowReason.INFINITE_TIMESTAMP, f"{what} is infinite ({moment.isoformat()})"
        )
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise TicketError(BadRowReason.NAIVE_TIMESTAMP, f"{what} has no time zone")
    try:
        moment.astimezone(UTC)
    except OverflowError:
        raise TicketError(
            BadRowReason.INFINITE_TIMESTAMP, f"{what} {moment.isoformat()} is beyond the calendar"
        ) from None


def evaluate_ticket(ticket: Ticket, policies: PolicySet, now: datetime) -> TicketEvaluation:
    """Judges every clock of ``ticket`` at ``now``. Events after ``now`` are ignored; a ticket
    created more than CREATION_TOLERANCE after ``now`` is a TicketError (created_in_future).
    No other exception escapes for a well-formed calendar: instants outside [EARLIEST, LATEST)
    or past year 9999 are TicketErrors too (infinite_timestamp, timestamp_out_of_range).

    A stopped clock is judged by the policy in force when it stopped; a running one by the
    policy for the current priority.
    """
    return checked(ticket, policies, now, _evaluate)


def checked(
    ticket: Ticket,
    policies: PolicySet,
    now: datetime,
    judge: Callable[[Ticket, PolicySet, datetime], _T],
) -> _T:
    """``judge(ticket, policies, now)`` for a ticket and instant the engine can judge; else,
    and for an instant past year 9999 met on the way, a TicketError (see evaluate_ticket)."""
    if not EARLIEST <= now < LATEST:
        raise TicketError(
            BadRowReason.TIMESTAMP_OUT_OF_RANGE, f"now {now.isoformat()} is out of range"
        )
    validate_ticket(ticket, policies, now)
    try:
        return judge(ticket, policies, now)
    except OverflowError as error:  # a deadline past year 9999: a target beyond any use
        raise TicketError(BadRowReason.TIMESTAMP_OUT_OF_RANGE, str(error)) from None


def _evaluate(ticket: Ticket, policies: PolicySet, now: datetime) -> TicketEvaluation:
    seen = _until(ticket, now)
    times = _Times(seen, policies, now)
    intervals = times.intervals
    category = intervals[-1].category
    sticky = _sticky_breaches(seen, policies, times)

    current = policies.policy_for(
        seen.priority, seen.queue, seen.customer, seen.organization, seen.attributes
    )
    reprioritised = any(e.kind is EventKind.PRIORITY_CHANGE for e in seen.events)

    def policy_at(moment: datetime | None) -> Policy:
        if moment is None or not reprioritised:
            return current
        return policies.policy_for(
            seen.value_at(EventKind.PRIORITY_CHANGE, moment),
            seen.queue,
            seen.customer,
            seen.organization,
            seen.attributes,
        )

    clocks: dict[Clock, ClockStatus] = {}
    completions: list[Completion] = []
    breaches: list[Breach] = []

    def judge_stopped(
        clock: Clock,
        start: datetime,
        stop: datetime,
        key: str,
        breach_key: str,
        applicable: bool = True,
    ) -> None:
        """A clock that stopped before the current one: only its outcome is kept."""
        policy = policy_at(stop)
        target = policy.target(clock)
        if target is None:
            return
        elapsed, breached_at = _progress(
            times.on(policy, clock), _us(target), start, stop, now, sticky.get(clock)
        )
        if applicable:
            completions.append(Completion(clock, key, stop, breached_at is None, elapsed / 1e6))
        if breached_at is not None:
            breaches.append(Breach(clock, breach_key, breached_at))

    def judge(
        clock: Clock,
        start: datetime,
        stop: datetime | None,
        key: str,
        breach_key: str,
        applicable: bool = True,
    ) -> ClockStatus | None:
        """The clock's status; an inapplicable one keeps only a breach it already had."""
        policy = policy_at(stop)
        target = policy.target(clock)
        if target is None:
            return None
        status = _clock_status(clock, policy, target, times, start, stop, now, sticky.get(clock))
        if status.stopped_at is not None and applicable:
            completions.append(
                Completion(
                    clock,
                    key,
                    status.stopped_at,
                    status.state is ClockState.MET,
                    status.elapsed_seconds,
                )
            )
        if status.breached_at is not None:
            breaches.append(Breach(clock, breach_key, status.breached_at))
        return status if applicable or status.breached_at is not None else None

    replies = [e.at for e in seen.events if e.kind is EventKind.PUBLIC_REPLY]
    resolutions = [i.start for i in intervals if i.category is StatusCategory.RESOLVED]

    # Resolved before any public reply: there was no first response to measure.
    first_stop = min([*replies[:1], *resolutions[:1]], default=None)
    answered = first_stop is None or (bool(replies) and replies[0] == first_stop)
    _keep(clocks, judge(Clock.FIRST_RESPONSE, seen.created_at, first_stop, "", "", answered))

    # Every resolution is a completion of its own; a re-open resumes the same clock, or
    # (restart) begins a new cycle whose breach is keyed by its start.
    current_stop = resolutions[-1] if category is StatusCategory.RESOLVED else None
    restart = current.reopen is Reopen.RESTART
    reopens = (
        [b.start for a, b in pairwise(intervals) if a.category is StatusCategory.RESOLVED]
        if restart
        else []
    )

    def cycle(moment: datetime) -> tuple[datetime, str]:
        """The start of the resolution cycle running at ``moment``, and its breach key."""
        index = bisect.bisect_right(reopens, moment) - 1 if restart else -1
        if index < 0:
            return seen.created_at, ""
        return reopens[index], reopens[index].isoformat()

    for entry in resolutions:
        if entry != current_stop:
            start, breach_key = cycle(entry)
            judge_stopped(Clock.RESOLUTION, start, entry, entry.isoformat(), breach_key)
    start, breach_key = cycle(current_stop or now)
    _keep(
        clocks,
        judge(
            Clock.RESOLUTION,
            start,
            current_stop,
            current_stop.isoformat() if current_stop else "",
            breach_key,
        ),
    )

    # One update window from creation and from every reply or progress update.
    news = [
        e.at for e in seen.events if e.kind in (EventKind.PUBLIC_REPLY, EventKind.AUTOMATIC_UPDATE)
    ]
    # Several at one instant (helpdesks stamp whole seconds) close one window and open one:
    # every window starts at a distinct instant, so its key is unique.
    starts = list(dict.fromkeys([seen.created_at, *news]))
    for index, start in enumerate(starts):
        if index + 1 < len(starts):
            key = start.isoformat()
            judge_stopped(Clock.UPDATE, start, starts[index + 1], key, key)
            continue
        stop = max(current_stop, start) if current_stop is not None else None
        _keep(clocks, judge(Clock.UPDATE, start, stop, start.isoformat(), start.isoformat()))

    # One next-reply window from each oldest unanswered customer message (when any policy
    # measures them: the common case pays nothing).
    measured = policies.default.next_reply_seconds is not None or any(
        rule.policy.next_reply_seconds is not None for rule in policies.rules
    )
    windows = _reply_windows(seen.events, resolutions) if measured else []
    for index, (start, stop, answered) in enumerate(windows):
        key = start.isoformat()
        if index + 1 < len(windows):
            assert stop is not None  # only the last window may still be open
            judge_stopped(Clock.NEXT_REPLY, start, stop, key, key, answered)
            continue
        if stop is None and current_stop is not None:
            stop, answered = max(current_stop, start), False  # resolved: nothing owed now
        _keep(clocks, judge(Clock.NEXT_REPLY, start, stop, key, key, answered))

    paused_since = pause_limit_at = None
    if category is StatusCategory.PAUSED:
        paused_since = intervals[-1].start
        if current.max_pause_seconds is not None:
            pause_limit_at = paused_since + timedelta(microseconds=_us(current.max_pause_seconds))

    return TicketEvaluation(
        ticket_id=ticket.ticket_id,
        policy=policy_at(None).name,
        priority=seen.priority,
        queue=seen.queue,
        status=seen.status,
        category=category,
        clocks=clocks,
        completions=tuple(completions),
        breaches=tuple(breaches),
        evaluated_at=now,
        subject=ticket.subject,
        paused_since=paused_since,
        pause_limit_at=pause_limit_at,
        customer=ticket.customer,
        organization=ticket.organization,
    )


@dataclass(frozen=True, slots=True)
class Span:
    """A stretch of a ticket's history as one clock sees it: ``category`` open (counts),
    paused or resolved; ``business_microseconds`` is the open time it adds (0 unless open)."""

    start: datetime
    end: datetime
    category: StatusCategory
    business_microseconds: int


def clock_spans(
    ticket: Ticket, policies: PolicySet, policy: Policy, clock: Clock, now: datetime
) -> list[Span]:
    """The status intervals from creation to ``now`` as ``clock`` under ``policy`` counts them
    (its pausing statuses, its calendar): the very intervals and measure the evaluation uses,
    for explaining it."""
    measure = _Times(_until(ticket, now), policies, now).on(policy, clock)
    return [
        Span(
            interval.start,
            interval.end,
            interval.category,
            measure.calendar.business_microseconds(interval.start, interval.end)
            if interval.category is StatusCategory.OPEN
            else 0,
        )
        for interval in measure.intervals
    ]


def _reply_windows(
    events: Iterable[TicketEvent], resolutions: list[datetime]
) -> list[tuple[datetime, datetime | None, bool]]:
    """The next-reply windows as (start, stop, answered): each from the oldest customer
    message not answered yet to the first public reply at or after it (answered), or to the
    first entry into resolved at or after it, if earlier (not answered); stop None while
    still open. A later window starts at the first message after the previous stop."""
    messages: list[datetime] = []
    replies: list[datetime] = []
    for event in events:
        if event.kind is EventKind.CUSTOMER_MESSAGE:
            messages.append(event.at)
        elif event.kind is EventKind.PUBLIC_REPLY:
            replies.append(event.at)
    windows: list[tuple[datetime, datetime | None, bool]] = []
    index = 0
    while index < len(messages):
        start = messages[index]
        found = bisect.bisect_left(replies, start)
        reply = replies[found] if found < len(replies) else None
        found = bisect.bisect_left(resolutions, start)
        resolved = resolutions[found] if found < len(resolutions) else None
        if reply is not None and (resolved is None or reply <= resolved):
            stop, answered = reply, True
        elif resolved is not None:
            stop, answered = resolved, False
        else:
            windows.append((start, None, True))
            break
        windows.append((start, stop, answered))
        index = bisect.bisect_right(messages, stop)
    return windows


def _keep(clocks: dict[Clock, ClockStatus], status: ClockStatus | None) -> None:
    if status is not None:
        clocks[status.clock] = status


def _us(seconds: float) -> int:
    """A duration in seconds as whole microseconds, the resolution of a datetime."""
    return round(seconds * 1_000_000)


def _clock_status(
    clock: Clock,
    policy: Policy,
    target: float,
    times: _Times,
    start: datetime,
    stop: datetime | None,
    now: datetime,
    sticky: datetime | None,
) -> ClockStatus:
    calendar = policy.calendar
    measure = times.on(policy, clock)
    intervals = measure.intervals
    target_us = _us(target)
    elapsed, breached_at = _progress(measure, target_us, start, stop, now, sticky)
    running = stop is None and intervals[-1].category is StatusCategory.OPEN
    at_risk_us = round(target_us * policy.at_risk_ratio)
    overdue_us = round(target_us * policy.overdue_ratio)

    def when(amount: int) -> datetime | None:
        if elapsed >= amount:
            return measure.reached(start, amount)
        if running:
            return calendar.add_business_microseconds(max(now, start), amount - elapsed)
        return None

    if stop is not None:
        state = ClockState.BREACHED if breached_at is not None else ClockState.MET
    elif breached_at is not None:
        state = ClockState.BREACHED
    elif not running:
        state = ClockState.PAUSED
    elif elapsed >= at_risk_us:
        state = ClockState.AT_RISK
    else:
        state = ClockState.OK
    deadline = None if state is ClockState.MET else when(target_us)
    return ClockStatus(
        clock=clock,
        state=state,
        target_seconds=target,
        elapsed_seconds=elapsed / 1e6,
        remaining_seconds=(target_us - elapsed) / 1e6,
        deadline=deadline,
        at_risk_at=when(at_risk_us) if state is not ClockState.MET else None,
        breached_at=breached_at,
        started_at=start,
        stopped_at=None if stop is None else min(stop, now),
        running=running,
        overdue_at=None if state is ClockState.MET else when(overdue_us),
        overdue=elapsed >= overdue_us,
        breach_due=deadline if running and breached_at is None else None,
        resumed_at=_restarted(intervals, start, breached_at or now, StatusCategory.OPEN),
        reopened_at=_restarted(intervals, start, now, None),
    )


def _restarted(
    intervals: list[_Interval], start: datetime, until: datetime, into: StatusCategory | None
) -> datetime | None:
    """The latest instant in (start, until] at which the ticket entered ``into`` (open) from
    another category, or (``into`` None) left a resolved status."""
    latest = None
    for previous, interval in pairwise(intervals):
        if interval.start > until:
            break
        if interval.start <= start:
            continue
        if into is None:
            restarted = previous.category is StatusCategory.RESOLVED
        else:
            restarted = interval.category is into and previous.category is not into
        if restarted:
            latest = interval.start
    return latest


def _progress(
    measure: _OpenTime,
    target_us: int,
    start: datetime,
    stop: datetime | None,
    now: datetime,
    sticky: datetime | None,
) -> tuple[int, datetime | None]:
    """Where a clock stands: its open business microseconds and when it breached.

    A clock still running at its deadline instant is breached at that instant (breached_at ==
    deadline); one that stops at or before its deadline is met.
    """
    end = now if stop is None else min(stop, now)
    elapsed = measure.between(start, end)
    breached_at = None
    if elapsed >= target_us:
        deadline = measure.reached(start, target_us)
        if deadline is not None and (stop is None or deadline < end):
            breached_at = deadline
    if breached_at is None and sticky is not None and start <= sticky <= end:
        breached_at = sticky  # breached under an earlier priority's tighter target
    return elapsed, breached_at


def _until(ticket: Ticket, now: datetime) -> Ticket:
    if not ticket.events or ticket.events[-1].at <= now:
        return ticket  # events are in time order: nothing to cut
    events = tuple(e for e in ticket.events if e.at <= now)
    return ticket if len(events) == len(ticket.events) else replace(ticket, events=events)


def _category(
    policies: PolicySet, status: str, paused: frozenset[str] | None = None
) -> StatusCategory:
    """The status's category; with ``paused``, as one clock sees it: resolved stays resolved,
    the statuses in ``paused`` pause it and every other one runs it."""
    category = policies.statuses.category(status)
    if category is None:  # validate_ticket guarantees this cannot happen
        raise TicketError(BadRowReason.UNKNOWN_STATUS, f"status {status!r} is not mapped")
    if paused is None or category is StatusCategory.RESOLVED:
        return category
    return StatusCategory.PAUSED if status in paused else StatusCategory.OPEN


def _intervals(
    ticket: Ticket, policies: PolicySet, now: datetime, paused: frozenset[str] | None = None
) -> list[_Interval]:
    """Consecutive [start, end) intervals of status category from creation up to ``now``;
    a single empty one at creation when ``now`` is not after it. With ``paused``, the
    categories as a clock paused by exactly those statuses sees them (see ``_category``)."""
    intervals: list[_Interval] = []
    start = ticket.created_at
    category = _category(policies, ticket.initial_status, paused)
    for event in _status_changes(ticket.events):
        assert event.value is not None
        new = _category(policies, event.value, paused)
        if new is category:
            continue
        if event.at > start:
            intervals.append(_Interval(start, event.at, category))
        start, category = event.at, new
    intervals.append(_Interval(start, max(now, ticket.created_at), category))
    return intervals


def _status_changes(events: Iterable[TicketEvent]) -> Iterable[TicketEvent]:
    return (e for e in events if e.kind is EventKind.STATUS_CHANGE)


class _OpenTime:
    """Open business microseconds since creation on one calendar, at any instant up to now.

    Calendar time is exactly additive, so every span is the difference of two readings: one
    pass over the intervals, then each reading costs one calendar call.
    """

    def __init__(self, calendar: Calendar, intervals: list[_Interval]) -> None:
        self.calendar = calendar
        self.intervals = intervals
        self.starts = [interval.start for interval in intervals]
        self.before: list[int] = []  # open time before each interval
        self.after: list[int] = []  # open time at each interval's end
        total = 0
        for interval in intervals:
            self.before.append(total)
            if interval.category is StatusCategory.OPEN:
                total += calendar.business_microseconds(interval.start, interval.end)
            self.after.append(total)

    def at(self, moment: datetime) -> int:
        index = bisect.bisect_right(self.starts, moment) - 1
        if index < 0:
            return 0
        interval = self.intervals[index]
        if interval.category is not StatusCategory.OPEN:
            return self.before[index]
        return self.before[index] + self.calendar.business_microseconds(
            interval.start, min(moment, interval.end)
        )

    def between(self, start: datetime, end: datetime) -> int:
        return max(0, self.at(end) - self.at(start)) if end > start else 0

    def reached(self, start: datetime, amount: int) -> datetime | None:
        """The earliest instant at which ``amount`` open business microseconds have passed
        since ``start``; None if not by now."""
        if amount <= 0:
            return start
        goal = self.at(start) + amount
        index = bisect.bisect_left(self.after, goal)
        if index == len(self.after):
            return None
        # The first interval reaching the goal; it is open, since it adds time.
        low = max(self.intervals[index].start, start)
        return self.calendar.add_business_microseconds(low, goal - self.at(low))


class _FlatOpenTime(_OpenTime):
    """The fast path of _OpenTime for the common ticket: one open interval (never paused nor
    resolved, as this clock counts) on the 24x7 calendar, every instant in UTC. Open time is
    then plain elapsed time, so each reading is a subtraction: no search, no calendar call.
    It answers exactly as _OpenTime does (tests/unit/engine/test_fast_path.py holds the two
    equal on generated histories)."""

    def __init__(self, calendar: Calendar, intervals: list[_Interval]) -> None:
        self.calendar = calendar
        self.intervals = intervals
        self.start, self.end = intervals[0].start, intervals[0].end
        self.starts = [self.start]
        total = (self.end - self.start) // _MICROSECOND
        self.before, self.after = [0], [total]
        self.total = total

    def at(self, moment: datetime) -> int:
        if moment <= self.start:
            return 0
        return (min(moment, self.end) - self.start) // _MICROSECOND

    def reached(self, start: datetime, amount: int) -> datetime | None:
        if amount <= 0:
            return start
        if start.tzinfo is not UTC:  # an instant in another zone keeps it: the general way
            return super().reached(start, amount)
        goal = self.at(start) + amount
        if goal > self.total:
            return None
        low = max(self.start, start)
        # add_business_microseconds of the 24x7 calendar: low + what is still missing
        missing = goal - self.at(low)
        return low if missing <= 0 else low + missing * _MICROSECOND


def _open_time(calendar: Calendar, intervals: list[_Interval]) -> _OpenTime:
    if (
        len(intervals) == 1
        and intervals[0].category is StatusCategory.OPEN
        and type(calendar) is ContinuousCalendar
        and intervals[0].start.tzinfo is UTC
        and intervals[0].end.tzinfo is UTC
        and FAST_PATH
    ):
        return _FlatOpenTime(calendar, intervals)
    return _OpenTime(calendar, intervals)


class _Times:
    """The ticket's status intervals, with their open time measured once per calendar and
    set of pausing statuses. Without a policy's ``pause`` override, every clock shares the
    intervals of the status map's categories: the common case costs one pass."""

    def __init__(self, ticket: Ticket, policies: PolicySet, now: datetime) -> None:
        self._ticket, self._policies, self._now = ticket, policies, now
        self.intervals = _intervals(ticket, policies, now)
        self._intervals: dict[frozenset[str], list[_Interval]] = {
            policies.statuses.paused: self.intervals
        }
        self._measures: dict[tuple[int, frozenset[str] | None], _OpenTime] = {}

    def on(self, policy: Policy, clock: Clock) -> _OpenTime:
        """Open time as ``clock`` under ``policy`` counts it."""
        calendar = policy.calendar
        paused = policy.pause.get(clock) if policy.pause else None
        if paused is not None and paused == self._policies.statuses.paused:
            paused = None  # the default, spelt out
        found = self._measures.get((id(calendar), paused))
        if found is None or found.calendar is not calendar:
            found = _open_time(calendar, self.for_paused(paused))
            self._measures[(id(calendar), paused)] = found
        return found

    def for_paused(self, paused: frozenset[str] | None) -> list[_Interval]:
        if paused is None:
            return self.intervals
        found = self._intervals.get(paused)
        if found is None:
            found = self._intervals[paused] = _intervals(
                self._ticket, self._policies, self._now, paused
            )
        return found


def _sticky_breaches(ticket: Ticket, policies: PolicySet, times: _Times) -> dict[Clock, datetime]:
    """When each clock went over target under an earlier priority: a breach is never withdrawn.

    One forward pass over the priority changes: just before each one, first_response and
    resolution are judged as they stood under the priority then in force (a stopped clock by
    the priority in force when it stopped); the first breach found for a clock is kept, but
    for a resolution clock that restarts on re-open, the first one of the latest cycle.
    """
    breached: dict[Clock, datetime] = {}
    created = ticket.created_at
    priority = ticket.initial_priority
    # The priority in force from each instant on, as the changes so far set it.
    history: list[tuple[datetime, str]] = [(created, priority)]
    first_reply: datetime | None = None
    resolved_since: datetime | None = None  # the last entry into resolved, while resolved
    first_resolution: datetime | None = None
    reopened: datetime | None = None  # the last re-open
    category = _category(policies, ticket.initial_status)
    if category is StatusCategory.RESOLVED:
        resolved_since = first_resolution = created

    def priority_at(moment: datetime) -> str:
        found = ticket.initial_priority
        for since, value in history:
            if since > moment:
                break
            found = value
        return found

    for event in ticket.events:
        if event.kind is EventKind.PUBLIC_REPLY and first_reply is None:
            first_reply = event.at
        elif event.kind is EventKind.STATUS_CHANGE:
            assert event.value is not None
            new = _category(policies, event.value)
            if new is not category:
                if new is StatusCategory.RESOLVED:
                    resolved_since = event.at
                    if first_resolution is None:
                        first_resolution = event.at
                else:
                    if category is StatusCategory.RESOLVED:
                        reopened = event.at
                    resolved_since = None
                category = new
        elif event.kind is EventKind.PRIORITY_CHANGE:
            assert event.value is not None
            stops = [s for s in (first_reply, first_resolution) if s is not None]
            for clock, stop in (
                (Clock.FIRST_RESPONSE, min(stops, default=None)),
                (Clock.RESOLUTION, resolved_since),
            ):
                policy = policies.policy_for(
                    priority if stop is None else priority_at(stop),
                    ticket.queue,
                    ticket.customer,
                    ticket.organization,
                    ticket.attributes,
                )
                start = created
                if clock is Clock.RESOLUTION and policy.reopen is Reopen.RESTART and reopened:
                    start = reopened
                if clock in breached and breached[clock] >= start:
                    continue
                target = policy.target(clock)
                if target is None:
                    continue
                _, breached_at = _progress(
                    times.on(policy, clock), _us(target), start, stop, event.at, None
                )
                if breached_at is not None:
                    breached[clock] = breached_at
            priority = event.value
            history.append((event.at, priority))
    return breached

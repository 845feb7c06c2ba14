"""Why a ticket's SLA clocks stand where they do: the evaluation, taken apart for people.

``explain_ticket`` judges the ticket with ``evaluate_ticket`` and, for each clock it reports,
replays the status intervals that clock counted (``clock_spans``: the evaluation's own
intervals and calendar), so that what it shows always adds up to what was judged: the open
business time of the counted spans is the clock's elapsed time. Within a counted span, the
stretches outside business hours (the calendar's own ``business_intervals``) are listed, the
first ``OFF_HOURS_SHOWN`` of them, the rest counted and summed. Pure, like the engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from sla_monitor.engine.business_calendar import BusinessCalendar
from sla_monitor.engine.calendar_protocol import Calendar
from sla_monitor.engine.clocks import ClockStatus, clock_spans, evaluate_ticket
from sla_monitor.engine.ledger import LedgerEntry, LedgerKind
from sla_monitor.engine.model import (
    Clock,
    ClockState,
    EventKind,
    JsonValue,
    StatusCategory,
    Ticket,
)
from sla_monitor.engine.policy import Policy, PolicySet

# Stretches outside business hours listed per counted span: months of office hours have
# hundreds; past this many only their number and total are given.
OFF_HOURS_SHOWN = 20
_US = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class OffHours:
    """A stretch of a counted span outside business hours, ``[start, end)`` in the calendar's
    time zone; ``seconds`` is real elapsed time."""

    start: datetime
    end: datetime
    seconds: float


@dataclass(frozen=True, slots=True)
class SpanExplanation:
    """One stretch of a clock's window: counted (an open status) or not, and why."""

    start: datetime
    end: datetime
    counted: bool
    category: StatusCategory
    status: str  # the status in force at ``start``
    business_seconds: float  # what it added to the clock (0 unless counted)
    wall_seconds: float
    # Counted spans: their first OFF_HOURS_SHOWN stretches outside business hours, in order,
    # then how many more there are and their total; with the business time they make up the
    # wall time exactly.
    outside_business_hours: tuple[OffHours, ...] = ()
    outside_business_hours_more: int = 0
    outside_business_hours_more_seconds: float = 0.0

    @property
    def reason(self) -> str:
        if self.counted:
            return f"counted: status {self.status!r}"
        if self.category is StatusCategory.RESOLVED:
            return f"resolved (status {self.status!r})"
        return f"paused by status {self.status!r}"


@dataclass(frozen=True, slots=True)
class ClockExplanation:
    clock: Clock
    policy: str  # the policy that judged this clock (a stopped one: the one at its stop)
    calendar: str
    state: ClockState
    started_at: datetime
    stopped_at: datetime | None
    target_seconds: float
    elapsed_business_seconds: float
    wall_seconds: float  # from start to stop (or now): what a stopwatch would show
    remaining_seconds: float
    deadline: datetime | None
    at_risk_at: datetime | None
    breached_at: datetime | None
    derivation: str
    spans: tuple[SpanExplanation, ...]


@dataclass(frozen=True, slots=True)
class TicketExplanation:
    ticket_id: str
    subject: str
    status: str
    category: StatusCategory
    priority: str
    queue: str
    policy: str
    matched: dict[str, JsonValue] | None  # None: no rule matched, the default applies
    calendar: str
    evaluated_at: datetime
    clocks: tuple[ClockExplanation, ...]
    paused_since: datetime | None
    pause_limit_at: datetime | None


def explain_ticket(ticket: Ticket, policies: PolicySet, now: datetime) -> TicketExplanation:
    """Explains the evaluation of ``ticket`` at ``now``; raises TicketError as
    ``evaluate_ticket`` does."""
    evaluation = evaluate_ticket(ticket, policies, now)
    policy, matched = policies.explain(
        evaluation.priority, ticket.queue, ticket.customer, ticket.organization, ticket.attributes
    )
    clocks = tuple(
        _explain_clock(ticket, policies, status, now) for status in evaluation.clocks.values()
    )
    return TicketExplanation(
        ticket_id=ticket.ticket_id,
        subject=ticket.subject,
        status=evaluation.status,
        category=evaluation.category,
        priority=evaluation.priority,
        queue=evaluation.queue,
        policy=evaluation.policy,
        matched=matched,
        calendar=policy.calendar.name,
        evaluated_at=now,
        clocks=clocks,
        paused_since=evaluation.paused_since,
        pause_limit_at=evaluation.pause_limit_at,
    )


def _policy_at(ticket: Ticket, policies: PolicySet, moment: datetime | None) -> Policy:
    """The policy the evaluation judged a clock by: at its stop, else the current one."""
    return policies.policy_for(
        ticket.value_at(EventKind.PRIORITY_CHANGE, moment),
        ticket.queue,
        ticket.customer,
        ticket.organization,
        ticket.attributes,
    )


def _explain_clock(
    ticket: Ticket, policies: PolicySet, status: ClockStatus, now: datetime
) -> ClockExplanation:
    policy = _policy_at(ticket, policies, status.stopped_at)
    end = status.stopped_at or now
    spans: list[SpanExplanation] = []
    for span in clock_spans(ticket, policies, policy, status.clock, now):
        start, stop = max(span.start, status.started_at), min(span.end, end)
        if stop <= start and not (span.start == span.end == start):
            continue
        counted = span.category is StatusCategory.OPEN
        business = policy.calendar.business_microseconds(start, stop) if counted else 0
        shown: tuple[OffHours, ...] = ()
        more, more_us = 0, 0
        if counted:
            shown, more, more_us = _off_hours(policy.calendar, start, stop)
        spans.append(
            SpanExplanation(
                start=start,
                end=stop,
                counted=counted,
                category=span.category,
                status=ticket.value_at(EventKind.STATUS_CHANGE, start),
                business_seconds=business / 1e6,
                wall_seconds=max(0.0, (stop - start).total_seconds()),
                outside_business_hours=shown,
                outside_business_hours_more=more,
                outside_business_hours_more_seconds=more_us / 1e6,
            )
        )
    return ClockExplanation(
        clock=status.clock,
        policy=policy.name,
        calendar=policy.calendar.name,
        state=status.state,
        started_at=status.started_at,
        stopped_at=status.stopped_at,
        target_seconds=status.target_seconds,
        elapsed_business_seconds=status.elapsed_seconds,
        wall_seconds=max(0.0, (end - status.started_at).total_seconds()),
        remaining_seconds=status.remaining_seconds,
        deadline=status.deadline,
        at_risk_at=status.at_risk_at,
        breached_at=status.breached_at,
        derivation=_derivation(status, policy),
        spans=tuple(spans),
    )


def _off_hours(
    calendar: Calendar, start: datetime, end: datetime
) -> tuple[tuple[OffHours, ...], int, int]:
    """The stretches of [start, end) outside business hours: the first OFF_HOURS_SHOWN, then
    how many more and their total in microseconds (the gaps between business intervals)."""
    zone: tzinfo | None = calendar.zone if isinstance(calendar, BusinessCalendar) else None
    shown: list[OffHours] = []
    more, more_us = 0, 0

    def gap(low: datetime, high: datetime) -> None:
        nonlocal more, more_us
        # Through UTC: two datetimes of one zone would subtract as wall-clock time.
        length = (high.astimezone(UTC) - low.astimezone(UTC)) // _US
        if length <= 0:
            return
        if len(shown) < OFF_HOURS_SHOWN:
            local = zone or low.tzinfo
            shown.append(OffHours(low.astimezone(local), high.astimezone(local), length / 1e6))
        else:
            more += 1
            more_us += length

    cursor = start
    for low, high in calendar.business_intervals(start, end):
        gap(cursor, low)
        cursor = high
    gap(cursor, end)
    return tuple(shown), more, more_us


def _derivation(status: ClockStatus, policy: Policy) -> str:
    """How the deadline follows from the start, the target and the time counted so far."""
    target = _duration(status.target_seconds)
    elapsed = _duration(status.elapsed_seconds)
    calendar = policy.calendar.name
    if status.state is ClockState.MET:
        return f"stopped at {_at(status.stopped_at)} after {elapsed} of {target}: met"
    if status.breached_at is not None:
        return (
            f"target {target} of {calendar} time from {_at(status.started_at)} was reached at "
            f"{_at(status.breached_at)}: breached"
        )
    if status.deadline is None:
        return (
            f"{elapsed} of {target} counted; no deadline while paused "
            f"({_duration(status.remaining_seconds)} left when the clock runs again)"
        )
    return (
        f"{elapsed} of {target} counted since {_at(status.started_at)}; the remaining "
        f"{_duration(status.remaining_seconds)} of {calendar} time ends at {_at(status.deadline)}"
    )


def _at(moment: datetime | None) -> str:
    return "-" if moment is None else moment.isoformat()


def _local(moment: datetime) -> str:
    """``Fri 2026-03-06 17:00 CET``: a wall-clock instant, in its own zone."""
    seconds = ":%S" if moment.second else ""
    return moment.strftime(f"%a %Y-%m-%d %H:%M{seconds} %Z")


def _duration(seconds: float) -> str:
    """``1h 05m`` style, to the second; negative durations keep their sign."""
    sign = "-" if seconds < 0 else ""
    total = round(abs(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    if days or hours:
        parts.append(f"{hours}h")
    parts.append(f"{minutes:02d}m" if parts else f"{minutes}m")
    if secs:
        parts.append(f"{secs:02d}s")
    return sign + " ".join(parts)


def so_far(ledger: Sequence[LedgerEntry], explanation: TicketExplanation) -> list[LedgerEntry]:
    """The entries of a recorded ledger up to the explanation's instant (``explain --now``
    in the past shows the ledger as it was then)."""
    return [entry for entry in ledger if entry.at <= explanation.evaluated_at]


def ledger_json(ledger: Sequence[LedgerEntry]) -> list[dict[str, Any]]:
    return [
        {
            "at": entry.at.isoformat(),
            "clock": entry.clock.value,
            "window_key": entry.window_key,
            "kind": entry.kind.value,
            "policy": entry.policy,
            "previous_policy": entry.previous_policy,
            "calendar": entry.calendar,
            "priority": entry.priority,
            "elapsed_seconds": round(entry.elapsed_seconds, 6),
        }
        for entry in ledger
    ]


def ledger_text(ledger: Sequence[LedgerEntry] | None) -> list[str]:
    """The ledger as lines of text: one per transition, in the order they happened."""
    if ledger is None:
        return ["", "Ledger: not available (the daemon's database could not be read)"]
    if not ledger:
        return ["", "Ledger: nothing recorded yet"]
    lines = ["", "Ledger (as recorded):"]
    for entry in ledger:
        window = f" window {entry.window_key}" if entry.window_key else ""
        what = entry.kind.value
        if entry.kind is LedgerKind.POLICY_CHANGED:
            what += f" {entry.previous_policy!r} -> {entry.policy!r}"
        lines.append(
            f"  {_at(entry.at)}  {entry.clock.value}{window}: {what}, "
            f"{_duration(entry.elapsed_seconds)} counted "
            f"(policy {entry.policy!r}, {entry.calendar!r}, priority {entry.priority!r})"
        )
    return lines


def explanation_json(
    explanation: TicketExplanation,
    show_subject: bool = True,
    ledger: Sequence[LedgerEntry] | None = None,
) -> dict[str, Any]:
    """The explanation as JSON-ready data (``explain --json`` and the HTTP API), with the
    ticket's recorded ``ledger`` (null: it could not be read)."""

    def when(moment: datetime | None) -> str | None:
        return None if moment is None else moment.isoformat()

    data: dict[str, Any] = {
        "ticket_id": explanation.ticket_id,
        "status": explanation.status,
        "category": explanation.category.value,
        "priority": explanation.priority,
        "queue": explanation.queue,
        "policy": explanation.policy,
        "matched": explanation.matched,
        "calendar": explanation.calendar,
        "evaluated_at": explanation.evaluated_at.isoformat(),
        "paused_since": when(explanation.paused_since),
        "pause_limit_at": when(explanation.pause_limit_at),
        "clocks": [
            {
                "clock": clock.clock.value,
                "policy": clock.policy,
                "calendar": clock.calendar,
                "state": clock.state.value,
                "started_at": clock.started_at.isoformat(),
                "stopped_at": when(clock.stopped_at),
                "target_seconds": clock.target_seconds,
                "elapsed_business_seconds": round(clock.elapsed_business_seconds, 6),
                "wall_seconds": round(clock.wall_seconds, 6),
                "remaining_seconds": round(clock.remaining_seconds, 6),
                "deadline": when(clock.deadline),
                "at_risk_at": when(clock.at_risk_at),
                "breached_at": when(clock.breached_at),
                "derivation": clock.derivation,
                "spans": [_span_json(span) for span in clock.spans],
            }
            for clock in explanation.clocks
        ],
        "ledger": None if ledger is None else ledger_json(ledger),
    }
    if show_subject:
        data["subject"] = explanation.subject
    return data


def _span_json(span: SpanExplanation) -> dict[str, Any]:
    data: dict[str, Any] = {
        "start": span.start.isoformat(),
        "end": span.end.isoformat(),
        "counted": span.counted,
        "category": span.category.value,
        "status": span.status,
        "reason": span.reason,
        "business_seconds": round(span.business_seconds, 6),
        "wall_seconds": round(span.wall_seconds, 6),
    }
    if span.counted:
        data["outside_business_hours"] = [
            {
                "start": off.start.isoformat(),
                "end": off.end.isoformat(),
                "seconds": round(off.seconds, 6),
            }
            for off in span.outside_business_hours
        ]
        data["outside_business_hours_more"] = span.outside_business_hours_more
        data["outside_business_hours_more_seconds"] = round(
            span.outside_business_hours_more_seconds, 6
        )
    return data


def explanation_text(
    explanation: TicketExplanation, ledger: Sequence[LedgerEntry] | None = None
) -> str:
    """The explanation as plain text for a support lead, ending with the recorded ledger
    (None: it could not be read)."""
    e = explanation
    if e.matched is None:
        why = "no rule matched, the default policy applies"
    elif not e.matched:
        why = "its rule matches every ticket"
    else:
        why = "matched on " + ", ".join(f"{k} = {v!r}" for k, v in sorted(e.matched.items()))
    lines = [
        f"Ticket {e.ticket_id}: {e.subject}" if e.subject else f"Ticket {e.ticket_id}",
        f"  status {e.status!r} ({e.category.value}), priority {e.priority!r}, queue {e.queue!r}",
        f"  judged at {e.evaluated_at.isoformat()}",
        f"Policy {e.policy!r}: {why}",
        f"Calendar {e.calendar!r}",
    ]
    if e.paused_since is not None:
        limit = ""
        if e.pause_limit_at is not None:
            limit = f", paused too long from {_at(e.pause_limit_at)}"
        lines.append(f"Paused since {_at(e.paused_since)}{limit}")
    if not e.clocks:
        lines.append("No clock applies.")
    for clock in e.clocks:
        lines += [
            "",
            f"{clock.clock.value}: {clock.state.value.upper()}"
            + (f" (policy {clock.policy!r})" if clock.policy != e.policy else ""),
            f"  started {_at(clock.started_at)}"
            + (f", stopped {_at(clock.stopped_at)}" if clock.stopped_at else ""),
            f"  target {_duration(clock.target_seconds)} of {clock.calendar!r} time; "
            f"counted {_duration(clock.elapsed_business_seconds)} of business time "
            f"in {_duration(clock.wall_seconds)} of wall time",
        ]
        for span in clock.spans:
            if span.counted:
                off = span.wall_seconds - span.business_seconds
                outside = f" ({_duration(off)} outside business hours)" if off >= 1 else ""
                lines.append(
                    f"    counted     {_at(span.start)} .. {_at(span.end)}: "
                    f"{_duration(span.business_seconds)} in status {span.status!r}{outside}"
                )
                lines += [
                    f"      not counted: outside business hours {_local(off.start)} -> "
                    f"{_local(off.end)} ({_duration(off.seconds)})"
                    for off in span.outside_business_hours
                ]
                if span.outside_business_hours_more:
                    lines.append(
                        f"      ... and {span.outside_business_hours_more} more, "
                        f"{_duration(span.outside_business_hours_more_seconds)} in all"
                    )
            else:
                lines.append(f"    not counted {_at(span.start)} .. {_at(span.end)}: {span.reason}")
        lines.append(f"  {clock.derivation}")
        lines.append(
            f"  deadline {_at(clock.deadline)}, at risk {_at(clock.at_risk_at)}, "
            f"breached {_at(clock.breached_at)}"
        )
    lines += ledger_text(ledger)
    return "\n".join(lines)

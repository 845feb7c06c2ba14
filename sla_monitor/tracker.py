"""The open tickets the daemon follows, their latest evaluation and when each changes next.

Synchronous and I/O free: the daemon feeds it tickets and the time, it answers with evaluations
and keeps the open-ticket counts that the gauges export. Re-evaluation is driven by a timer heap
so an idle ticket costs nothing until its next at-risk or deadline instant.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sla_monitor.engine import (
    Clock,
    ClockState,
    PolicySet,
    StatusCategory,
    Ticket,
    TicketEvaluation,
    evaluate_ticket,
)
from sla_monitor.engine.clocks import Breach, Completion
from sla_monitor.store import TicketOutcomes

GaugeKey = tuple[str, str, str, str]  # clock, state, priority, queue


@dataclass(slots=True)
class _Tracked:
    ticket: Ticket
    evaluation: TicketEvaluation
    recorded: set[tuple[Clock, str, bool]] = field(default_factory=set)


class Tracker:
    """Open tickets by id. ``update`` raises engine TicketError for a ticket it cannot judge."""

    def __init__(self, policies: PolicySet) -> None:
        self.policies = policies
        self._tracked: dict[str, _Tracked] = {}
        self._timers: list[tuple[datetime, str]] = []
        self.counts: Counter[GaugeKey] = Counter()
        # Open tickets whose update clock ran out: candidates for a progress update.
        self.owing: set[str] = set()
        self.queues: set[str] = set()

    def __len__(self) -> int:
        return len(self._tracked)

    def __contains__(self, ticket_id: object) -> bool:
        return ticket_id in self._tracked

    def evaluation(self, ticket_id: str) -> TicketEvaluation | None:
        tracked = self._tracked.get(ticket_id)
        return None if tracked is None else tracked.evaluation

    def tickets(self) -> list[Ticket]:
        return [tracked.ticket for tracked in self._tracked.values()]

    def evaluations(self) -> list[TicketEvaluation]:
        return [tracked.evaluation for tracked in self._tracked.values()]

    def update(self, ticket: Ticket, now: datetime) -> TicketEvaluation:
        """Evaluates a new or changed ticket; a resolved one is judged and then forgotten."""
        evaluation = evaluate_ticket(ticket, self.policies, now)
        previous = self._tracked.get(ticket.ticket_id)
        if previous is not None:
            self._count(previous.evaluation, -1)
        self.owing.discard(ticket.ticket_id)
        if evaluation.category is StatusCategory.RESOLVED:
            self._tracked.pop(ticket.ticket_id, None)
            return evaluation
        update = evaluation.clocks.get(Clock.UPDATE)
        if update is not None and update.state is ClockState.BREACHED and not update.stopped:
            self.owing.add(ticket.ticket_id)
        tracked = _Tracked(ticket, evaluation, previous.recorded if previous else set())
        self._tracked[ticket.ticket_id] = tracked
        self._count(evaluation, +1)
        self._schedule(evaluation)
        return evaluation

    def refresh_due(self, now: datetime) -> list[TicketEvaluation]:
        """Re-evaluates every ticket whose next transition is at or before ``now``."""
        refreshed: list[TicketEvaluation] = []
        while self._timers and self._timers[0][0] <= now:
            due, ticket_id = heapq.heappop(self._timers)
            tracked = self._tracked.get(ticket_id)
            if tracked is None or tracked.evaluation.next_transition != due:
                continue  # stale timer: the ticket changed or left since it was set
            refreshed.append(self.update(tracked.ticket, now))
        return refreshed

    def next_due(self) -> datetime | None:
        while self._timers:
            due, ticket_id = self._timers[0]
            tracked = self._tracked.get(ticket_id)
            if tracked is not None and tracked.evaluation.next_transition == due:
                return due
            heapq.heappop(self._timers)
        return None

    def unrecorded(self, evaluation: TicketEvaluation) -> TicketOutcomes | None:
        """The breaches and completions of ``evaluation`` not yet confirmed as recorded."""
        done = self._recorded_keys(evaluation.ticket_id)
        breaches = tuple(b for b in evaluation.breaches if _breach_key(b) not in done)
        completions = tuple(c for c in evaluation.completions if _completion_key(c) not in done)
        if not breaches and not completions:
            return None
        return TicketOutcomes(
            evaluation.ticket_id, evaluation.priority, evaluation.queue, breaches, completions
        )

    def mark_recorded(self, outcomes: TicketOutcomes) -> None:
        tracked = self._tracked.get(outcomes.ticket_id)
        if tracked is None:
            return
        tracked.recorded.update(_breach_key(b) for b in outcomes.breaches)
        tracked.recorded.update(_completion_key(c) for c in outcomes.completions)

    def ticket(self, ticket_id: str) -> Ticket | None:
        tracked = self._tracked.get(ticket_id)
        return None if tracked is None else tracked.ticket

    def forget(self, ticket_id: str) -> None:
        self.owing.discard(ticket_id)
        tracked = self._tracked.pop(ticket_id, None)
        if tracked is not None:
            self._count(tracked.evaluation, -1)

    def _recorded_keys(self, ticket_id: str) -> set[tuple[Clock, str, bool]]:
        tracked = self._tracked.get(ticket_id)
        return set() if tracked is None else tracked.recorded

    def _schedule(self, evaluation: TicketEvaluation) -> None:
        due = evaluation.next_transition
        if due is not None:
            heapq.heappush(self._timers, (due, evaluation.ticket_id))

    def _count(self, evaluation: TicketEvaluation, delta: int) -> None:
        self.queues.add(evaluation.queue)
        for clock, status in evaluation.clocks.items():
            if status.stopped:
                continue  # a stopped clock is no longer open work; completions count it
            key = (clock.value, status.state.value, evaluation.priority, evaluation.queue)
            self.counts[key] += delta
            if self.counts[key] == 0:
                del self.counts[key]


def _breach_key(breach: Breach) -> tuple[Clock, str, bool]:
    return (breach.clock, breach.key, True)


def _completion_key(completion: Completion) -> tuple[Clock, str, bool]:
    return (completion.clock, completion.key, False)

"""Judging: tickets go through the tracker (the engine), and each evaluation's news goes to
where it is kept until recorded — unrecorded outcomes here, escalations and owed updates in
their planners. A ticket that cannot be judged is a bad row, never an error of the loop."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import structlog

from sla_monitor.engine import BadRowReason, PolicySet, Ticket, TicketEvaluation
from sla_monitor.engine.clocks import TicketError
from sla_monitor.escalation_planner import EscalationPlanner, escalation_state
from sla_monitor.metrics import Metrics
from sla_monitor.records import (
    EscalationRow,
    EscalationState,
    NewlyRecorded,
    OwedUpdates,
    TicketOutcomes,
    merge_outcomes,
)
from sla_monitor.sources import BadRow, Batch
from sla_monitor.tracker import Tracker
from sla_monitor.update_planner import UpdatePlanner

log = structlog.get_logger("sla_monitor.judge")


@dataclass(frozen=True, slots=True)
class Handoff:
    """What one recording takes: outcomes, escalation changes and owed updates."""

    outcomes: dict[str, TicketOutcomes]
    escalations: dict[str, list[EscalationRow]]
    updates: OwedUpdates | None
    backlog: bool = False  # the escalations are a first start's backlog

    def __bool__(self) -> bool:
        return bool(self.outcomes or self.escalations or (self.updates and self.updates.rows))

    @property
    def escalation_state(self) -> EscalationState:
        return escalation_state(self.escalations, self.backlog)


class Judge:
    def __init__(
        self,
        source: str,
        tracker: Tracker,
        metrics: Metrics,
        escalations: EscalationPlanner,
        updates: UpdatePlanner | None,
    ) -> None:
        self.source = source
        self.tracker = tracker
        self.metrics = metrics
        self.escalations = escalations
        self.updates = updates
        self._outcomes: dict[str, TicketOutcomes] = {}
        # Bad rows already reported, so the re-reads of the watermark lag count each once.
        self._bad: dict[str, str] = {}

    def __len__(self) -> int:
        """Tickets whose news waits to be recorded."""
        return len(self._outcomes) + len(self.escalations)

    def absorb(self, batch: Batch, now: datetime, rejudge: bool = False) -> None:
        """Judges the batch's new and changed tickets (all of them when ``rejudge``)."""
        for bad in batch.bad_rows:
            self.bad_row(bad)
        evaluations = []
        judged: dict[str, Ticket] = {}
        for ticket in batch.tickets:
            if not rejudge and self.tracker.unchanged(ticket):
                continue  # a customer message, an internal note, a re-read of the lag window
            try:
                evaluations.append(self.tracker.update(ticket, now))
            except Exception as error:
                self._failed(ticket.ticket_id, error)
                continue
            judged[ticket.ticket_id] = ticket
            self._bad.pop(ticket.ticket_id, None)
        self._hand_on(evaluations, judged)

    def judge_due(self, now: datetime) -> None:
        """Judges again every ticket whose at-risk, deadline or overdue instant has come."""
        self._hand_on(self.tracker.refresh_due(now, self._failed))

    def plan_updates(self, now: datetime) -> None:
        if self.updates is None:
            return
        tracker = self.tracker
        failed = self.updates.plan_due(
            self.source, tracker.owing, tracker.ticket, tracker.evaluation, now
        )
        if failed:
            self.metrics.customer_updates.labels("failed").inc(failed)

    def leave(self, ticket_id: str) -> None:
        """A tracked ticket leaves without a final evaluation: out of the gauges, and its
        escalations resolve with the next recording."""
        self.tracker.forget(ticket_id)
        self._outcomes.pop(ticket_id, None)
        self.escalations.leave(ticket_id)
        if self.updates is not None:
            self.updates.leave(ticket_id)

    def drop_missing(self, tracked: set[str], open_ids: set[str]) -> list[str]:
        """Leaves every ticket of ``tracked`` (still tracked) missing from ``open_ids``."""
        gone = sorted(t for t in tracked - open_ids if t in self.tracker)
        for ticket_id in gone:
            self.leave(ticket_id)
        return gone

    def resolve_untracked(self, escalated: list[str]) -> list[str]:
        """Resolves the escalations of tickets not tracked (and not about to be recorded)."""
        stale = [t for t in escalated if t not in self.tracker and t not in self.escalations]
        for ticket_id in stale:
            self.escalations.leave(ticket_id)
        return stale

    def reload(self, policies: PolicySet, now: datetime) -> None:
        """New policies: every tracked ticket is judged again, and rows left out as bad may be
        fine now (reported again if not)."""
        self.tracker.policies = policies
        self.absorb(Batch(tickets=self.tracker.tickets()), now, rejudge=True)
        self._bad.clear()

    def bad_row(self, bad: BadRow) -> None:
        if bad.ticket_id is not None:
            if self._bad.get(bad.ticket_id) == bad.reason:
                return
            self._bad[bad.ticket_id] = bad.reason
            if bad.ticket_id in self.tracker:
                self.leave(bad.ticket_id)
        self.metrics.bad_rows.labels(bad.reason).inc()
        log.warning(
            "bad_row",
            source=self.source,
            ticket_id=bad.ticket_id,
            reason=bad.reason,
            detail=bad.detail,
        )

    def _failed(self, ticket_id: str, error: Exception) -> None:
        """A ticket the engine refused (TicketError) or failed on is a bad row: that ticket
        is left out and reported, the loop and every other ticket go on."""
        if isinstance(error, TicketError):
            self.bad_row(BadRow(ticket_id, error.reason, error.detail))
            return
        failed = BadRowReason.EVALUATION_FAILED
        if self._bad.get(ticket_id) != failed:
            log.exception("evaluation_failed", ticket_id=ticket_id, exc_info=error)
        self.bad_row(BadRow(ticket_id, failed, f"{type(error).__name__}: {error}"))

    def _hand_on(
        self, evaluations: list[TicketEvaluation], tickets: dict[str, Ticket] | None = None
    ) -> None:
        """Keeps each evaluation's news until recorded: its outcomes and ledger entries (of the
        ticket judged; a timer's ticket is the one tracked), its escalations and updates."""
        for evaluation in evaluations:
            ticket_id = evaluation.ticket_id
            try:
                ledger = self.tracker.ledger(
                    evaluation, None if tickets is None else tickets.get(ticket_id)
                )
            except Exception:  # a bug: the outcomes are recorded all the same
                log.exception("ledger_failed", ticket_id=ticket_id)
                ledger = ()
            outcomes = self.tracker.unrecorded(evaluation, ledger)
            if outcomes is not None:
                self._outcomes[ticket_id] = merge_outcomes(self._outcomes.get(ticket_id), outcomes)
            self.escalations.judge(evaluation)
            if self.updates is not None and evaluation.ticket_id in self.tracker.owing:
                self.updates.judged(evaluation)

    # --- recording ------------------------------------------------------------------------

    def take(self) -> Handoff:
        """Everything waiting to be recorded, taken out so judging may go on meanwhile."""
        outcomes, self._outcomes = self._outcomes, {}
        updates = self.updates.take() if self.updates is not None else None
        backlog = self.escalations.in_backlog
        return Handoff(outcomes, self.escalations.take(), updates, backlog)

    def put_back(self, handoff: Handoff) -> None:
        """Recording failed: anything judged meanwhile is newer than what was taken, and wins."""
        self._outcomes = handoff.outcomes | {
            ticket_id: merge_outcomes(handoff.outcomes.get(ticket_id), outcomes)
            for ticket_id, outcomes in self._outcomes.items()
        }
        self.escalations.put_back(handoff.escalations)
        if self.updates is not None and handoff.updates is not None:
            self.updates.put_back(handoff.updates)

    def recorded(self, handoff: Handoff, new: NewlyRecorded, backlog: bool = False) -> None:
        """What the store recorded: remembered as recorded, counted and reported (a backlog
        read by a first start in one line per recording, not one per breach)."""
        for outcomes in handoff.outcomes.values():
            self.tracker.mark_recorded(outcomes)
        self.escalations.recorded(handoff.escalations, self.tracker)
        if self.updates is not None and handoff.updates is not None:
            queued = {m.dedup_key for m in new.outbox if m.action == "update"}
            self.updates.recorded(handoff.updates, queued, self.tracker)
        self.metrics.count_recorded(new)
        if backlog and new.breaches:
            log.info(
                "sla_breached_in_backlog",
                breaches=len(new.breaches),
                by_clock=dict(Counter(breach.clock for breach in new.breaches)),
            )
            return
        for breach in new.breaches:
            log.info(
                "sla_breached",
                ticket_id=breach.ticket_id,
                clock=breach.clock,
                priority=breach.priority,
                queue=breach.queue,
            )

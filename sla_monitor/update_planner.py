"""Plans customer progress updates: which owed update to post now, rendered in the customer's
language. Delivery goes through the outbox like every other message."""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from sla_monitor.engine import Ticket, TicketEvaluation
from sla_monitor.engine.owed_updates import QuietHours, owed_update
from sla_monitor.escalation_planner import humanize
from sla_monitor.records import OwedUpdateRow, OwedUpdates
from sla_monitor.templates import UpdateTemplates, format_when

log = structlog.get_logger("sla_monitor.update_planner")

# How long an update the store refused (the daily cap), or that failed to render, waits
# before it is asked again.
UPDATE_RETRY = timedelta(minutes=5)


@dataclass
class UpdatePlanner:
    """Plans the updates owed now, remembering per ticket what is already queued and when to
    ask again, so an owing ticket is not judged again on every cycle."""

    templates: UpdateTemplates
    min_ticket_age: float
    quiet_hours: QuietHours | None
    default_timezone: str
    max_per_day: int
    channel: str  # the outbox channel that delivers them
    # Owing tickets judged since the last plan: planned without judging them again.
    _fresh: dict[str, TicketEvaluation] = field(default_factory=dict, init=False)
    _queued: dict[str, str] = field(default_factory=dict, init=False)  # ticket -> latest key
    # Tickets not to look at before an instant: quiet hours, the daily cap, a failed render.
    _retry_at: dict[str, datetime] = field(default_factory=dict, init=False)
    _pending: list[OwedUpdateRow] = field(default_factory=list, init=False)

    def judged(self, evaluation: TicketEvaluation) -> None:
        """A fresh evaluation of an owing ticket, for the next plan."""
        self._fresh[evaluation.ticket_id] = evaluation

    def leave(self, ticket_id: str) -> None:
        self._fresh.pop(ticket_id, None)

    def plan_due(
        self,
        source: str,
        owing: Iterable[str],
        ticket_of: Callable[[str], Ticket | None],
        evaluation_of: Callable[[str], TicketEvaluation | None],
        now: datetime,
    ) -> int:
        """Plans the updates owed now for the next recording; returns how many failed."""
        planned: list[OwedUpdateRow] = []
        failed = 0
        fresh, self._fresh = self._fresh, {}
        for ticket_id in sorted(owing):
            retry_at = self._retry_at.get(ticket_id)
            if retry_at is not None and now < retry_at:
                continue
            queued = self._queued.get(ticket_id)
            if queued is not None and ticket_id not in fresh:
                continue  # judged the same as when its update was queued: the same update
            ticket = ticket_of(ticket_id)
            if ticket is None:
                continue
            quiet_until = self.quiet_until(ticket, now)
            if quiet_until is not None:
                # Nothing to judge before the customer's quiet hours end: skipped until then.
                self._retry_at[ticket_id] = quiet_until
                continue
            evaluation = fresh.get(ticket_id) or evaluation_of(ticket_id)
            if evaluation is None:
                continue
            try:
                row = self.plan(source, evaluation, ticket, now, queued)
            except Exception as error:
                # A template that fails for this ticket only: reported, retried later.
                self._retry_at[ticket_id] = now + UPDATE_RETRY
                failed += 1
                log.error(
                    "update_planning_failed",
                    ticket_id=ticket_id,
                    error=f"{type(error).__name__}: {error}",
                )
                continue
            if row is not None:
                planned.append(row)
        self._pending = planned
        return failed

    def take(self) -> OwedUpdates:
        taken, self._pending = self._pending, []
        return OwedUpdates(taken, self.max_per_day, self.channel)

    def put_back(self, taken: OwedUpdates) -> None:
        self._pending = self._pending or taken.rows

    def recorded(self, taken: OwedUpdates, queued: set[str], tracked: Container[str]) -> None:
        """``queued``: the keys the store put in the outbox; the others were capped (or queued
        before a restart) and are asked again later, not every cycle."""
        for row in taken.rows:
            if row.idempotency_key in queued:
                self._queued[row.ticket_id] = row.idempotency_key
                self._retry_at.pop(row.ticket_id, None)
            else:
                self._retry_at[row.ticket_id] = row.owed_at + UPDATE_RETRY
        for memo in (self._queued, self._retry_at):
            for ticket_id in [t for t in memo if t not in tracked]:
                del memo[ticket_id]

    def quiet_until(self, ticket: Ticket, now: datetime) -> datetime | None:
        """When this customer's quiet hours end, if ``now`` is inside them; else None."""
        if self.quiet_hours is None or not self.quiet_hours.contains(
            now, ticket.timezone, self.default_timezone
        ):
            return None
        return self.quiet_hours.ends_after(now, ticket.timezone, self.default_timezone)

    def plan(
        self,
        source: str,
        evaluation: TicketEvaluation,
        ticket: Ticket,
        now: datetime,
        queued: str | None = None,
    ) -> OwedUpdateRow | None:
        """The update to post now, or None: not owed, already ``queued`` (that key), or quiet
        hours for this customer."""
        owed = owed_update(evaluation, ticket.created_at, now, self.min_ticket_age)
        if owed is None:
            return None
        key = f"{source}/{ticket.ticket_id}/update/{owed.window_start.isoformat()}"
        if key == queued:
            return None
        if self.quiet_until(ticket, now) is not None:
            return None
        language = self.templates.pick(ticket.language)
        body = self.templates.render(
            language,
            {
                "ticket_id": ticket.ticket_id,
                "subject": ticket.subject,
                "status": evaluation.status,
                "priority": evaluation.priority,
                "queue": evaluation.queue,
                "age": humanize((now - ticket.created_at).total_seconds()),
                "next_update": format_when(owed.next_update_at),
            },
        )
        return OwedUpdateRow(
            key,
            ticket.ticket_id,
            owed.window_start,
            language,
            body,
            now,
            queue=evaluation.queue,
            priority=evaluation.priority,
            policy=evaluation.policy,
            customer=evaluation.customer,
            organization=evaluation.organization,
        )

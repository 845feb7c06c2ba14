"""Plans customer progress updates: which owed update to post now, rendered in the customer's
language. Delivery goes through the outbox like every other message."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sla_monitor.alerts import humanize
from sla_monitor.engine import Ticket, TicketEvaluation
from sla_monitor.engine.updates import QuietHours, owed_update
from sla_monitor.records import OwedUpdateRow
from sla_monitor.templates import UpdateTemplates, format_when


@dataclass
class UpdatePlanner:
    templates: UpdateTemplates
    min_ticket_age: float
    quiet_hours: QuietHours | None
    default_timezone: str
    max_per_day: int
    channel: str  # the outbox channel that delivers them

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
        return OwedUpdateRow(key, ticket.ticket_id, owed.window_start, language, body, now)

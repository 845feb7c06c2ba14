"""Escalation planning: the alert every channel is sent for an active escalation (labels and
annotations), and which escalations changed since they were last recorded."""

from __future__ import annotations

from collections.abc import Container

from sla_monitor.engine import TicketEvaluation
from sla_monitor.engine.escalation import (
    Escalation,
    EscalationLevel,
    Trigger,
    active_escalations,
)
from sla_monitor.records import EscalationRow, EscalationState

_ALERTNAMES = {
    Trigger.AT_RISK: "SLAAtRisk",
    Trigger.BREACHED: "SLABreached",
    Trigger.OVERDUE: "SLAOverdue",
    Trigger.PAUSE_LIMIT: "SLAPauseLimit",
}


def humanize(seconds: float) -> str:
    """'2h 5m', '45m', '30s': how far before or past a deadline, for people."""
    seconds = abs(int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{days}d" if days else "",
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
    ]
    text = " ".join(p for p in parts if p)
    return text or f"{secs}s"


def escalation_row(
    source: str, evaluation: TicketEvaluation, escalation: Escalation, ticket_url: str
) -> EscalationRow:
    status = escalation.status
    level = escalation.level
    clock = status.clock.value.replace("_", " ")
    url = ticket_url.replace("{ticket_id}", evaluation.ticket_id)
    over = status.remaining_seconds < 0
    timing = (
        f"{humanize(status.remaining_seconds)} over target"
        if over
        else f"{humanize(status.remaining_seconds)} left"
    )
    subject = evaluation.subject or "(no subject)"
    what = f"{clock} {status.state.value.replace('_', ' ')} ({timing})"
    if level.trigger is Trigger.PAUSE_LIMIT and evaluation.paused_since is not None:
        paused = (evaluation.evaluated_at - evaluation.paused_since).total_seconds()
        what = f"paused for {humanize(paused)}, longer than its policy allows"
    dedup_key = f"{source}/{escalation.key}"
    labels = {
        "alertname": _ALERTNAMES[level.trigger],
        "source": source,
        "ticket_id": evaluation.ticket_id,
        "clock": status.clock.value,
        "level": level.name,
        "priority": evaluation.priority,
        "queue": evaluation.queue,
        **level.labels,
    }
    annotations = {
        "summary": f"Ticket {evaluation.ticket_id} \u201c{subject}\u201d: {what}, "
        f"{evaluation.priority} in {evaluation.queue}",
        "subject": subject,
        "ticket_url": url,
        "deadline": status.deadline.isoformat() if status.deadline else "",
        "time_over" if over else "time_left": humanize(status.remaining_seconds),
        "state": status.state.value,
    }
    alert = {
        "dedup_key": dedup_key,
        "labels": labels,
        "annotations": annotations,
        "startsAt": evaluation.evaluated_at.isoformat(),
    }
    return EscalationRow(
        dedup_key, evaluation.ticket_id, status.clock.value, level.name, level.channels, alert
    )


class EscalationPlanner:
    """Which escalations each judged ticket calls for, remembering what was last recorded per
    ticket (as a 64-bit fingerprint of its active keys), so that only changes are handed on."""

    def __init__(
        self, source: str, levels: tuple[EscalationLevel, ...], ticket_url: str = ""
    ) -> None:
        self.source = source
        self.levels = levels
        self.ticket_url = ticket_url
        self._recorded: dict[str, int] = {}
        self._pending: dict[str, list[EscalationRow]] = {}

    def __contains__(self, ticket_id: object) -> bool:
        """True while a change for this ticket waits to be recorded."""
        return ticket_id in self._pending

    def __len__(self) -> int:
        return len(self._pending)

    def judge(self, evaluation: TicketEvaluation) -> None:
        """Notes the escalations ``evaluation`` calls for, if they changed."""
        if not self.levels:
            return
        rows = [
            escalation_row(self.source, evaluation, escalation, self.ticket_url)
            for escalation in active_escalations(evaluation, self.levels)
        ]
        if self._recorded.get(evaluation.ticket_id) != _fingerprint(rows):
            self._pending[evaluation.ticket_id] = rows

    def leave(self, ticket_id: str) -> None:
        """The ticket left the open set with no final judgement: its escalations resolve."""
        self._pending[ticket_id] = []

    def take(self) -> dict[str, list[EscalationRow]]:
        taken, self._pending = self._pending, {}
        return taken

    def put_back(self, taken: dict[str, list[EscalationRow]]) -> None:
        """Recording failed: what was judged meanwhile is newer and wins."""
        self._pending = taken | self._pending

    def recorded(self, taken: dict[str, list[EscalationRow]], tracked: Container[str]) -> None:
        for ticket_id, rows in taken.items():
            if ticket_id in tracked:
                self._recorded[ticket_id] = _fingerprint(rows)
            else:
                self._recorded.pop(ticket_id, None)


def _fingerprint(rows: list[EscalationRow]) -> int:
    """A ticket's active escalation keys as one 64-bit hash, not a set of strings."""
    return hash(frozenset(row.dedup_key for row in rows))


def escalation_state(taken: dict[str, list[EscalationRow]]) -> EscalationState:
    return EscalationState(
        tickets=list(taken), active=[row for rows in taken.values() for row in rows]
    )

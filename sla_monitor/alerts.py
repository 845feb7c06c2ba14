"""Turns an active escalation into the alert every channel is sent (labels and annotations)."""

from __future__ import annotations

from sla_monitor.engine import TicketEvaluation
from sla_monitor.engine.escalation import Escalation, Trigger
from sla_monitor.records import EscalationRow

_ALERTNAMES = {
    Trigger.AT_RISK: "SLAAtRisk",
    Trigger.BREACHED: "SLABreached",
    Trigger.OVERDUE: "SLAOverdue",
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
        "summary": f"Ticket {evaluation.ticket_id} \u201c{subject}\u201d: {clock} "
        f"{status.state.value.replace('_', ' ')} ({timing}), "
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

"""Escalation planning: the alert every channel is sent for an active escalation (labels and
annotations), which escalations changed since they were last recorded, and how a first
start's backlog is told (one summary per level and channel, see ``backlog_alerts``)."""

from __future__ import annotations

from collections.abc import Container, Iterable
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from sla_monitor.engine import TicketEvaluation
from sla_monitor.engine.escalation import (
    Escalation,
    EscalationLevel,
    Trigger,
    active_escalations,
)
from sla_monitor.records import BacklogSummary, EscalationRow, EscalationState

# What a first start does with escalations already due when monitoring started.
BacklogMode = Literal["summary", "page", "record"]
# How a summary says what the escalations of a level were when monitoring started.
_STATE_WORDS = {
    "SLAAtRisk": "at risk or breached",  # an at_risk level fires for breached ones too
    "SLABreached": "already breached",
    "SLAOverdue": "already overdue",
    "SLAPauseLimit": "paused longer than allowed",
}

# The API's listing of what a level's summary counts (GET /api/v1/tickets?state=...): an
# overdue clock is a breached one, and an at_risk level fires for breached ones too.
_LISTED_STATES = {
    "SLAAtRisk": "at_risk,breached",
    "SLABreached": "breached",
    "SLAOverdue": "breached",
    "SLAPauseLimit": "paused",
}

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
        self,
        source: str,
        levels: tuple[EscalationLevel, ...],
        ticket_url: str = "",
        backlog: BacklogMode = "summary",
        public_url: str | None = None,
    ) -> None:
        self.source = source
        self.levels = levels
        self.ticket_url = ticket_url
        self.public_url = public_url  # the board's address (http.public_url), for summaries
        self.backlog_mode: BacklogMode = backlog
        self._recorded: dict[str, int] = {}
        self._pending: dict[str, list[EscalationRow]] = {}
        # Set from a first start (no stored watermark) until its first watermark is recorded.
        self._backlog_since: datetime | None = None

    def begin_backlog(self, started_at: datetime) -> None:
        """A first start: what is escalated until the first watermark is recorded was due
        before monitoring started (its backlog), and is recorded as the mode says."""
        if self.backlog_mode != "page":
            self._backlog_since = started_at

    @property
    def in_backlog(self) -> bool:
        return self._backlog_since is not None

    def backlog_summary(self) -> BacklogSummary | None:
        """The summary to queue with the first watermark (mode "summary" only)."""
        if self._backlog_since is None or self.backlog_mode != "summary":
            return None
        return BacklogSummary(
            self.source, self._backlog_since, helpdesk_url(self.ticket_url), self.public_url
        )

    def end_backlog(self) -> None:
        """The first watermark (and the summary with it) is recorded: escalations page."""
        self._backlog_since = None

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

    def forget_recorded(self) -> None:
        """Forgets what was last recorded per ticket (a new leader: the store may hold what
        another replica recorded), so the next judging hands every ticket's state on."""
        self._recorded.clear()

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


def escalation_state(
    taken: dict[str, list[EscalationRow]], backlog: bool = False
) -> EscalationState:
    return EscalationState(
        tickets=list(taken),
        active=[row for rows in taken.values() for row in rows],
        backlog=backlog,
    )


def helpdesk_url(ticket_url: str) -> str:
    """The helpdesk's address (scheme and host) from the per-ticket URL template."""
    parts = urlsplit(ticket_url)
    return f"{parts.scheme}://{parts.netloc}/" if parts.scheme and parts.netloc else ""


def backlog_alerts(
    summary: BacklogSummary, counts: Iterable[dict[str, Any]]
) -> list[tuple[str, str, dict[str, Any]]]:
    """(dedup key, channel, alert) of each summary: one per level and channel, from rows of
    ``level, channel, alertname, severity, team, tickets, by_clock`` (clock -> escalations).

    It links (annotation ``ticket_url``) to the board when ``http.public_url`` is set, and
    then also names it (``board_url``) and the API's listing of the level's tickets
    (``api_url``); otherwise to the helpdesk.

    The key, ``<source>/backlog/<level>/<first start instant>``, is the same however often
    the queueing is retried (a PagerDuty or webhook receiver drops a repeat)."""
    alerts = []
    for row in counts:
        level, channel, tickets = row["level"], row["channel"], int(row["tickets"])
        by_clock: dict[str, int] = row["by_clock"]
        state = _STATE_WORDS.get(row["alertname"], "escalated")
        clocks = ", ".join(f"{n:,} {clock}" for clock, n in sorted(by_clock.items()))
        plural = "ticket was" if tickets == 1 else "tickets were"
        text = f"{tickets:,} {plural} {state} when monitoring started: {clocks}"
        key = f"{summary.source}/backlog/{level}/{summary.started_at.isoformat()}"
        labels = {
            "alertname": "SLABacklog",
            "source": summary.source,
            "level": level,
            "severity": row["severity"] or "warning",
            "team": row["team"] or "support",
        }
        annotations = {
            "summary": text,
            "count": str(tickets),
            "by_clock": ", ".join(f"{clock}={n}" for clock, n in sorted(by_clock.items())),
            "ticket_url": summary.helpdesk_url,
        }
        if board := summary.public_url:
            states = _LISTED_STATES.get(row["alertname"], "at_risk,breached")
            annotations["ticket_url"] = annotations["board_url"] = board
            annotations["api_url"] = f"{board}api/v1/tickets?state={states}"
        alert = {
            "dedup_key": key,
            "kind": "backlog",
            "labels": labels,
            "annotations": annotations,
            "startsAt": summary.started_at.isoformat(),
        }
        alerts.append((key, channel, alert))
    return alerts

"""Which escalation levels a ticket's clocks call for, at the evaluation's instant.

A level is active while its condition holds on a clock that has not stopped; when the clock
stops (reply, resolution) every level on it clears, which resolves the alert downstream. A
pause clears an at-risk level (the customer holds the ball); a breached or overdue level stays
through a pause. A level that applies again after it cleared is a new episode with its own key.

A pause_limit level concerns the ticket, not one clock: it is active while the ticket has been
paused longer than its policy's max_pause, and clears when the ticket leaves the paused
statuses; each pause is an episode. Its alert names the first of the level's clocks that has
not stopped (none left: no alert).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from sla_monitor.engine.clocks import ClockStatus, TicketEvaluation
from sla_monitor.engine.model import Clock, ClockState


class Trigger(StrEnum):
    AT_RISK = "at_risk"  # at risk or worse
    BREACHED = "breached"
    OVERDUE = "overdue"  # past the policy's overdue share of the target (2x by default)
    PAUSE_LIMIT = "pause_limit"  # the ticket paused longer than the policy's max_pause


@dataclass(frozen=True)
class EscalationLevel:
    name: str
    trigger: Trigger
    channels: tuple[str, ...]
    clocks: frozenset[Clock] = frozenset({Clock.FIRST_RESPONSE, Clock.RESOLUTION})
    labels: Mapping[str, str] = field(default_factory=dict)

    def applies(self, status: ClockStatus) -> bool:
        if status.clock not in self.clocks or status.stopped:
            return False
        if self.trigger is Trigger.PAUSE_LIMIT:
            return False  # the ticket's condition, not a clock's: see active_escalations
        if self.trigger is Trigger.AT_RISK:
            return status.state in (ClockState.AT_RISK, ClockState.BREACHED)
        if self.trigger is Trigger.BREACHED:
            return status.state is ClockState.BREACHED
        return status.overdue


@dataclass(frozen=True, slots=True)
class Escalation:
    """One level active on one clock of one ticket, in one episode.

    ``key`` is stable across restarts and unique per episode: ticket, clock, level, the
    update window for the update clock, and the instant the episode began when it is a
    re-entry (the clock resumed after a pause, or the ticket was re-opened, and the level
    applies again). The first episode of a clock keeps the plain key."""

    ticket_id: str
    level: EscalationLevel
    status: ClockStatus
    episode: datetime | None = None  # when a re-entry episode began; None for the first

    @property
    def key(self) -> str:
        key = f"{self.ticket_id}/{self.status.clock.value}/{self.level.name}"
        if self.status.clock in (Clock.UPDATE, Clock.NEXT_REPLY):
            key += f"/{_instant(self.status.started_at)}"
        if self.episode is not None:
            key += f"/{_instant(self.episode)}"
        return key


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def reentry(level: EscalationLevel, status: ClockStatus, now: datetime) -> datetime | None:
    """When the level's current episode began, if that was after the level first applied:
    the clock crossed the level's threshold, then a pause (at-risk only: a breach stays
    through a pause) or a re-opening interrupted it, and it applies again since."""
    if level.trigger is Trigger.AT_RISK:
        crossed = status.at_risk_at
        if crossed is None or crossed > now:  # breached under an earlier priority's target
            crossed = status.breached_at
        restarts: tuple[datetime | None, ...] = (status.resumed_at, status.reopened_at)
    elif level.trigger is Trigger.BREACHED:
        crossed, restarts = status.breached_at, (status.reopened_at,)
    else:
        crossed, restarts = status.overdue_at, (status.reopened_at,)
    if crossed is None:
        return None
    latest = max((r for r in restarts if r is not None), default=None)
    return latest if latest is not None and latest > crossed else None


def active_escalations(
    evaluation: TicketEvaluation, levels: tuple[EscalationLevel, ...]
) -> list[Escalation]:
    now = evaluation.evaluated_at
    active = [
        Escalation(evaluation.ticket_id, level, status, reentry(level, status, now))
        for status in evaluation.clocks.values()
        for level in levels
        if level.applies(status)
    ]
    if evaluation.paused_too_long:
        for level in levels:
            if level.trigger is not Trigger.PAUSE_LIMIT:
                continue
            carrier = next(
                (
                    status
                    for clock in Clock
                    if clock in level.clocks
                    and (status := evaluation.clocks.get(clock)) is not None
                    and not status.stopped
                ),
                None,
            )
            if carrier is not None:  # each pause is an episode, keyed by its start
                active.append(
                    Escalation(evaluation.ticket_id, level, carrier, evaluation.paused_since)
                )
    return active

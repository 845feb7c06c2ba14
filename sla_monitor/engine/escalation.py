"""Which escalation levels a ticket's clocks call for, at the evaluation's instant.

A level is active while its condition holds on a clock that has not stopped; when the clock
stops (reply, resolution) every level on it clears, which resolves the alert downstream.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from sla_monitor.engine.clocks import ClockStatus, TicketEvaluation
from sla_monitor.engine.model import Clock, ClockState


class Trigger(StrEnum):
    AT_RISK = "at_risk"  # at risk or worse
    BREACHED = "breached"
    OVERDUE = "overdue"  # past the policy's overdue share of the target (2x by default)


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
        if self.trigger is Trigger.AT_RISK:
            return status.state in (ClockState.AT_RISK, ClockState.BREACHED)
        if self.trigger is Trigger.BREACHED:
            return status.state is ClockState.BREACHED
        return status.overdue


@dataclass(frozen=True, slots=True)
class Escalation:
    """One level active on one clock of one ticket; ``key`` is stable across restarts."""

    ticket_id: str
    level: EscalationLevel
    status: ClockStatus

    @property
    def key(self) -> str:
        return f"{self.ticket_id}/{self.status.clock.value}/{self.level.name}"


def active_escalations(
    evaluation: TicketEvaluation, levels: tuple[EscalationLevel, ...]
) -> list[Escalation]:
    return [
        Escalation(evaluation.ticket_id, level, status)
        for status in evaluation.clocks.values()
        for level in levels
        if level.applies(status)
    ]

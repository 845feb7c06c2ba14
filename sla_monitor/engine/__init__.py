"""The pure SLA engine: functions of (ticket history, policy, now). No I/O, no wall clock."""

from sla_monitor.engine.calendar_protocol import Calendar, ContinuousCalendar
from sla_monitor.engine.clocks import ClockStatus, TicketEvaluation, evaluate_ticket
from sla_monitor.engine.model import (
    BadRowReason,
    Clock,
    ClockState,
    EventKind,
    StatusCategory,
    Ticket,
    TicketEvent,
)
from sla_monitor.engine.policy import Policy, PolicyRule, PolicySet, StatusMap

__all__ = [
    "BadRowReason",
    "Calendar",
    "Clock",
    "ClockState",
    "ClockStatus",
    "ContinuousCalendar",
    "EventKind",
    "Policy",
    "PolicyRule",
    "PolicySet",
    "StatusCategory",
    "StatusMap",
    "Ticket",
    "TicketEvaluation",
    "TicketEvent",
    "evaluate_ticket",
]

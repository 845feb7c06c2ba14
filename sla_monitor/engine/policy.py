"""SLA policies: targets per clock, which tickets they apply to, and what statuses mean."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from sla_monitor.engine.calendar_protocol import Calendar, ContinuousCalendar
from sla_monitor.engine.model import Clock, StatusCategory

HOUR = 3600.0
# The default priorities and statuses, in the order a configuration lists them (the first open
# status is the one a ticket is taken to have been created in when its history does not say).
DEFAULT_PRIORITIES = ("urgent", "high", "normal", "low")
DEFAULT_OPEN_STATUSES = ("new", "open")
DEFAULT_PAUSED_STATUSES = ("pending", "waiting")
DEFAULT_RESOLVED_STATUSES = ("resolved", "closed")


class Reopen(StrEnum):
    """What re-opening a resolved ticket does to its resolution clock."""

    RESUME = "resume"  # the clock goes on from where it stopped: one cycle per ticket
    RESTART = "restart"  # a new cycle, measured from the re-open instant, with a new target


@dataclass(frozen=True)
class Policy:
    """Targets in business seconds of ``calendar``; a target of None switches that clock off.

    ``pause`` names, for a clock, the statuses that pause that clock (of any category but
    resolved); a clock it does not name is paused by the status map's paused statuses.
    ``max_pause_seconds`` is how long (wall-clock seconds) a ticket may stay paused in one go
    before it is paused too long; None: no limit.
    """

    name: str = "default"
    first_response_seconds: float | None = 1 * HOUR
    resolution_seconds: float | None = 24 * HOUR
    update_interval_seconds: float | None = 4 * HOUR
    at_risk_ratio: float = 0.75
    overdue_ratio: float = 2.0  # escalates to a manager at twice the target by default
    calendar: Calendar = field(default_factory=ContinuousCalendar)
    next_reply_seconds: float | None = None
    pause: Mapping[Clock, frozenset[str]] = field(default_factory=dict, hash=False)
    reopen: Reopen = Reopen.RESUME
    max_pause_seconds: float | None = None

    def target(self, clock: Clock) -> float | None:
        if clock is Clock.FIRST_RESPONSE:
            return self.first_response_seconds
        if clock is Clock.RESOLUTION:
            return self.resolution_seconds
        if clock is Clock.NEXT_REPLY:
            return self.next_reply_seconds
        return self.update_interval_seconds


@dataclass(frozen=True)
class PolicyRule:
    """Applies ``policy`` to tickets whose priority and queue match; None matches anything."""

    policy: Policy
    priorities: frozenset[str] | None = None
    queues: frozenset[str] | None = None

    def matches(self, priority: str, queue: str) -> bool:
        return (self.priorities is None or priority in self.priorities) and (
            self.queues is None or queue in self.queues
        )


@dataclass(frozen=True)
class StatusMap:
    """Sorts the helpdesk's statuses into open, paused (clocks stop) and resolved."""

    open: frozenset[str] = frozenset(DEFAULT_OPEN_STATUSES)
    paused: frozenset[str] = frozenset(DEFAULT_PAUSED_STATUSES)
    resolved: frozenset[str] = frozenset(DEFAULT_RESOLVED_STATUSES)

    def category(self, status: str) -> StatusCategory | None:
        if status in self.open:
            return StatusCategory.OPEN
        if status in self.paused:
            return StatusCategory.PAUSED
        if status in self.resolved:
            return StatusCategory.RESOLVED
        return None


@dataclass(frozen=True)
class PolicySet:
    """Everything the engine needs to judge a ticket: first matching rule wins, else default."""

    rules: tuple[PolicyRule, ...] = ()
    default: Policy = field(default_factory=Policy)
    statuses: StatusMap = field(default_factory=StatusMap)
    priorities: frozenset[str] = frozenset(DEFAULT_PRIORITIES)

    def policy_for(self, priority: str, queue: str) -> Policy:
        for rule in self.rules:
            if rule.matches(priority, queue):
                return rule.policy
        return self.default

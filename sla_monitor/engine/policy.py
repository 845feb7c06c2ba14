"""SLA policies: targets per clock, which tickets they apply to, and what statuses mean."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from sla_monitor.engine.calendar_protocol import Calendar, ContinuousCalendar
from sla_monitor.engine.model import NO_ATTRIBUTES, Clock, JsonValue, StatusCategory

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


# A value a rule's ``match`` compares an attribute with: a string, a number or a boolean.
MatchValue = str | int | float | bool


def _token(value: object) -> tuple[str, object] | None:
    """``value`` as compared by ``match``: typed, so that true never equals 1 (as it does in
    Python); ints and floats compare as numbers. None for what a rule cannot name (null, a list,
    an object)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    return None


@dataclass(frozen=True)
class PolicyRule:
    """Applies ``policy`` to the tickets that meet every criterion it sets; a criterion of None
    matches anything. ``match`` maps an attribute to the values it may take (equality with one
    of them); a ticket without that attribute does not match."""

    policy: Policy
    priorities: frozenset[str] | None = None
    queues: frozenset[str] | None = None
    organizations: frozenset[str] | None = None
    customers: frozenset[str] | None = None
    match: Mapping[str, frozenset[MatchValue]] | None = None
    # The match as typed tokens, computed once: matching runs on every evaluation.
    _match_tokens: tuple[tuple[str, frozenset[tuple[str, object]]], ...] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        tokens = tuple(
            (key, frozenset(t for t in map(_token, values) if t is not None))
            for key, values in (self.match or {}).items()
        )
        object.__setattr__(self, "_match_tokens", tokens)

    @property
    def catch_all(self) -> bool:
        """True when the rule sets no criterion: it matches every ticket."""
        return (
            all(
                c is None
                for c in (self.priorities, self.queues, self.organizations, self.customers)
            )
            and not self.match
        )

    def matches(
        self,
        priority: str,
        queue: str,
        customer: str | None = None,
        organization: str | None = None,
        attributes: Mapping[str, JsonValue] = NO_ATTRIBUTES,
    ) -> bool:
        """Whether the ticket's fields meet every criterion (``explain`` without the
        allocation: this runs on every evaluation)."""
        if self.priorities is not None and priority not in self.priorities:
            return False
        if self.queues is not None and queue not in self.queues:
            return False
        if self.organizations is not None and organization not in self.organizations:
            return False
        if self.customers is not None and customer not in self.customers:
            return False
        for key, tokens in self._match_tokens:
            token = _token(attributes.get(key))
            if token is None or token not in tokens:
                return False
        return True

    def explain(
        self,
        priority: str,
        queue: str,
        customer: str | None = None,
        organization: str | None = None,
        attributes: Mapping[str, JsonValue] = NO_ATTRIBUTES,
    ) -> dict[str, JsonValue] | None:
        """The fields that made the rule match (``attributes.plan``, ``priority``, ...; empty
        for a catch-all), or None when it does not."""
        matched: dict[str, JsonValue] = {}
        for name, value, allowed in (
            ("priority", priority, self.priorities),
            ("queue", queue, self.queues),
            ("organization", organization, self.organizations),
            ("customer", customer, self.customers),
        ):
            if allowed is not None:
                if value not in allowed:
                    return None
                matched[name] = value
        for key, tokens in self._match_tokens:
            attribute = attributes.get(key)
            token = _token(attribute)
            if token is None or token not in tokens:
                return None
            matched[f"attributes.{key}"] = attribute
        return matched


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

    def policy_for(
        self,
        priority: str,
        queue: str,
        customer: str | None = None,
        organization: str | None = None,
        attributes: Mapping[str, JsonValue] = NO_ATTRIBUTES,
    ) -> Policy:
        """The first rule's policy (in file order) that matches the ticket's fields, else the
        default. Called on every evaluation: no allocation beyond the rules' own checks."""
        for rule in self.rules:
            if rule.matches(priority, queue, customer, organization, attributes):
                return rule.policy
        return self.default

    def explain(
        self,
        priority: str,
        queue: str,
        customer: str | None = None,
        organization: str | None = None,
        attributes: Mapping[str, JsonValue] = NO_ATTRIBUTES,
    ) -> tuple[Policy, dict[str, JsonValue] | None]:
        """The policy ``policy_for`` chooses and the fields its rule matched on (None: no rule
        matched, the default applies)."""
        for rule in self.rules:
            matched = rule.explain(priority, queue, customer, organization, attributes)
            if matched is not None:
                return rule.policy, matched
        return self.default, None

"""The support domain as the engine sees it: tickets, their events and the SLA clocks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType

# A value as JSON has it: what a ticket's attributes hold (plan, ticket type, channel, ...).
JsonValue = str | int | float | bool | None | list["JsonValue"] | dict[str, "JsonValue"]
NO_ATTRIBUTES: Mapping[str, JsonValue] = MappingProxyType({})


class Clock(StrEnum):
    """The SLA clocks measured on every ticket (a clock whose policy target is None is off)."""

    FIRST_RESPONSE = "first_response"
    RESOLUTION = "resolution"
    UPDATE = "update"
    NEXT_REPLY = "next_reply"  # off unless a policy sets a target


class ClockState(StrEnum):
    OK = "ok"
    AT_RISK = "at_risk"
    BREACHED = "breached"
    PAUSED = "paused"
    MET = "met"


class EventKind(StrEnum):
    """What happened on a ticket. Only PUBLIC_REPLY (by staff) answers the customer;
    AUTOMATIC_UPDATE (a progress update the daemon posted) gives news without answering."""

    CUSTOMER_MESSAGE = "customer_message"
    PUBLIC_REPLY = "public_reply"
    AUTOMATIC_UPDATE = "automatic_update"
    INTERNAL_NOTE = "internal_note"
    STATUS_CHANGE = "status_change"
    PRIORITY_CHANGE = "priority_change"


class BadRowReason(StrEnum):
    """Why a ticket could not be judged: the ``reason`` of a bad row, in logs and as the bad-rows
    metric's label. The sources and the engine produce all but EVALUATION_FAILED (the daemon's:
    the engine raised on that ticket, a bug)."""

    NULL_TIMESTAMP = "null_timestamp"
    NAIVE_TIMESTAMP = "naive_timestamp"
    BAD_TIMESTAMP = "bad_timestamp"
    EVENT_BEFORE_CREATION = "event_before_creation"
    UNKNOWN_STATUS = "unknown_status"
    UNKNOWN_PRIORITY = "unknown_priority"
    UNKNOWN_EVENT_KIND = "unknown_event_kind"
    NULL_QUEUE = "null_queue"
    NULL_STATUS = "null_status"
    NULL_PRIORITY = "null_priority"
    CREATED_IN_FUTURE = "created_in_future"
    INFINITE_TIMESTAMP = "infinite_timestamp"
    TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
    BAD_ATTRIBUTES = "bad_attributes"  # the attributes column holds no JSON object
    EVALUATION_FAILED = "evaluation_failed"


class StatusCategory(StrEnum):
    """How a helpdesk status affects the clocks."""

    OPEN = "open"
    PAUSED = "paused"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class TicketEvent:
    """One event in a ticket's history.

    ``value`` is the new status for STATUS_CHANGE and the new priority for PRIORITY_CHANGE.
    """

    at: datetime
    kind: EventKind
    value: str | None = None


@dataclass(frozen=True, slots=True)
class Ticket:
    """A ticket with its history, ordered by time. All datetimes are timezone-aware.

    ``initial_status`` and ``initial_priority`` are the values at creation; the current ones
    follow from the events. ``customer`` (the requester's id or e-mail), ``organization`` and
    ``attributes`` (a read-only mapping of helpdesk fields: plan, type, channel, ...) say who
    the ticket is for: policies match on them, metrics never show them.
    """

    ticket_id: str
    created_at: datetime
    queue: str
    initial_status: str
    initial_priority: str
    subject: str = ""
    events: tuple[TicketEvent, ...] = field(default=())
    language: str | None = None  # the requester's, e.g. "de"; chooses the update template
    timezone: str | None = None  # the requester's IANA zone, for quiet hours
    customer: str | None = None
    organization: str | None = None
    # Not hashed (a mapping is not hashable); compared by content.
    attributes: Mapping[str, JsonValue] = field(default_factory=lambda: NO_ATTRIBUTES, hash=False)

    @property
    def status(self) -> str:
        return self.value_at(EventKind.STATUS_CHANGE, None)

    @property
    def priority(self) -> str:
        return self.value_at(EventKind.PRIORITY_CHANGE, None)

    def value_at(self, kind: EventKind, moment: datetime | None) -> str:
        """The status (or priority) in force at ``moment``; the latest one for None."""
        value = self.initial_status if kind is EventKind.STATUS_CHANGE else self.initial_priority
        for event in self.events:
            if moment is not None and event.at > moment:
                break
            if event.kind is kind and event.value is not None:
                value = event.value
        return value

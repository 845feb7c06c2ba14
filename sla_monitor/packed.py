"""Tickets packed into bytes, so a daemon can hold a million open ones in a few hundred MiB.

A ``Ticket`` with two events costs ~450 bytes of Python objects (the ticket, a tuple, an object
and a datetime per event); packed it is one bytes object of ~80 bytes: times as microseconds
since the epoch, event kinds as a byte, and statuses, priorities, queues, languages and time
zones as indexes into a table shared by all tickets. The subject and id stay strings.

Who the ticket is for costs little more: the organization is an index into the same table
(organizations repeat across tickets), the customer and the attributes (as canonical JSON,
sorted keys, no spaces) are stored inline as UTF-8, so that no table grows with every customer
or attribute value ever seen. Unpacking shares one mapping per distinct attributes text.

Packing is exact: ``unpack(pack(t)) == t`` for every ticket whose times are all in UTC (what
the sources deliver). Other tickets are kept as they are, because an evaluation's keys carry
the time zone of the times it was given.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from sla_monitor.engine import EventKind, Ticket, TicketEvent
from sla_monitor.engine.model import NO_ATTRIBUTES, JsonValue

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# created_at, queue, initial status, initial priority, language, time zone, organization,
# then the byte lengths of the customer (_NONE: None) and of the attributes (0: none) that
# follow the header, before the events
_HEADER = struct.Struct("<qHHHHHHHH")
_EVENT = struct.Struct("<qBH")  # at, kind, value
_KINDS = tuple(EventKind)
_KIND_INDEX = {kind: index for index, kind in enumerate(_KINDS)}
_NONE = 0xFFFF  # the index of None
# Distinct attribute texts whose unpacked mapping is kept for sharing; the cache starts afresh
# when full (it only saves parsing, and tickets of one plan share one text).
_ATTRIBUTES_CACHE = 4096


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


class TicketPacker:
    """Packs and unpacks tickets; owns the table of their short strings."""

    def __init__(self) -> None:
        self._strings: list[str] = []
        self._index: dict[str, int] = {}
        self._attributes: dict[bytes, Mapping[str, JsonValue]] = {}

    def pack(self, ticket: Ticket) -> bytes | Ticket:
        """The ticket as bytes (its id and subject aside), or itself when it cannot be packed
        exactly (a time outside UTC, more short strings than the table holds, attributes
        that are not JSON, a customer or attributes over 64 KiB)."""
        if ticket.created_at.tzinfo is not UTC or any(
            event.at.tzinfo is not UTC for event in ticket.events
        ):
            return ticket
        try:
            customer = b"" if ticket.customer is None else ticket.customer.encode()
            attributes = _attributes_text(ticket.attributes)
            parts = [
                _HEADER.pack(
                    _micros(ticket.created_at),
                    self._code(ticket.queue),
                    self._code(ticket.initial_status),
                    self._code(ticket.initial_priority),
                    self._code(ticket.language),
                    self._code(ticket.timezone),
                    self._code(ticket.organization),
                    _NONE if ticket.customer is None else _length(customer),
                    _length(attributes),
                ),
                customer,
                attributes,
            ]
            parts.extend(
                _EVENT.pack(_micros(event.at), _KIND_INDEX[event.kind], self._code(event.value))
                for event in ticket.events
            )
        except (OverflowError, struct.error, TypeError, ValueError):
            return ticket
        return b"".join(parts)

    def unpack(self, ticket_id: str, subject: str, packed: bytes | Ticket) -> Ticket:
        if isinstance(packed, Ticket):
            return packed
        (
            created,
            queue,
            status,
            priority,
            language,
            timezone,
            organization,
            customer_length,
            attributes_length,
        ) = _HEADER.unpack_from(packed)
        strings = self._strings
        start = _HEADER.size
        customer = None
        if customer_length != _NONE:
            customer = packed[start : start + customer_length].decode()
            start += customer_length
        attributes = self._attributes_of(packed[start : start + attributes_length])
        start += attributes_length
        events = tuple(
            TicketEvent(
                _EPOCH + at * _MICROSECOND,
                _KINDS[kind],
                None if value == _NONE else strings[value],
            )
            for at, kind, value in _EVENT.iter_unpack(packed[start:])
        )
        return Ticket(
            ticket_id=ticket_id,
            created_at=_EPOCH + created * _MICROSECOND,
            queue=strings[queue],
            initial_status=strings[status],
            initial_priority=strings[priority],
            subject=subject,
            events=events,
            language=None if language == _NONE else strings[language],
            timezone=None if timezone == _NONE else strings[timezone],
            customer=customer,
            organization=None if organization == _NONE else strings[organization],
            attributes=attributes,
        )

    def _attributes_of(self, text: bytes) -> Mapping[str, JsonValue]:
        if not text:
            return NO_ATTRIBUTES
        attributes = self._attributes.get(text)
        if attributes is None:
            if len(self._attributes) >= _ATTRIBUTES_CACHE:
                self._attributes.clear()
            attributes = self._attributes[text] = MappingProxyType(json.loads(text))
        return attributes

    def _code(self, value: str | None) -> int:
        if value is None:
            return _NONE
        code = self._index.get(value)
        if code is None:
            if len(self._strings) >= _NONE:
                raise OverflowError("more distinct short strings than a packed ticket indexes")
            code = self._index[value] = len(self._strings)
            self._strings.append(value)
        return code


def _attributes_text(attributes: Mapping[str, JsonValue]) -> bytes:
    """Canonical JSON, so that equal attributes pack to equal bytes (``Tracker.unchanged``
    compares packed tickets). NaN and infinities are refused: they would not compare equal."""
    if not attributes:
        return b""
    return json.dumps(
        dict(attributes),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode()


def _length(data: bytes) -> int:
    if len(data) >= _NONE:
        raise OverflowError("a customer or attributes too long to pack")
    return len(data)

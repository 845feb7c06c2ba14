"""Tickets packed into bytes, so a daemon can hold a million open ones in a few hundred MiB.

A ``Ticket`` with two events costs ~450 bytes of Python objects (the ticket, a tuple, an object
and a datetime per event); packed it is one bytes object of ~60 bytes: times as microseconds
since the epoch, event kinds as a byte, and statuses, priorities, queues, languages and time
zones as indexes into a table shared by all tickets. The subject and id stay strings.

Packing is exact: ``unpack(pack(t)) == t`` for every ticket whose times are all in UTC (what
the sources deliver). Other tickets are kept as they are, because an evaluation's keys carry
the time zone of the times it was given.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

from sla_monitor.engine import EventKind, Ticket, TicketEvent

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# created_at, queue, initial status, initial priority, language, time zone
_HEADER = struct.Struct("<qHHHHH")
_EVENT = struct.Struct("<qBH")  # at, kind, value
_KINDS = tuple(EventKind)
_KIND_INDEX = {kind: index for index, kind in enumerate(_KINDS)}
_NONE = 0xFFFF  # the index of None


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


class TicketPacker:
    """Packs and unpacks tickets; owns the table of their short strings."""

    def __init__(self) -> None:
        self._strings: list[str] = []
        self._index: dict[str, int] = {}

    def pack(self, ticket: Ticket) -> bytes | Ticket:
        """The ticket as bytes (its id and subject aside), or itself when it cannot be packed
        exactly (a time outside UTC, more short strings than the table holds)."""
        if ticket.created_at.tzinfo is not UTC or any(
            event.at.tzinfo is not UTC for event in ticket.events
        ):
            return ticket
        try:
            parts = [
                _HEADER.pack(
                    _micros(ticket.created_at),
                    self._code(ticket.queue),
                    self._code(ticket.initial_status),
                    self._code(ticket.initial_priority),
                    self._code(ticket.language),
                    self._code(ticket.timezone),
                )
            ]
            parts.extend(
                _EVENT.pack(_micros(event.at), _KIND_INDEX[event.kind], self._code(event.value))
                for event in ticket.events
            )
        except OverflowError:
            return ticket
        return b"".join(parts)

    def unpack(self, ticket_id: str, subject: str, packed: bytes | Ticket) -> Ticket:
        if isinstance(packed, Ticket):
            return packed
        created, queue, status, priority, language, timezone = _HEADER.unpack_from(packed)
        strings = self._strings
        events = tuple(
            TicketEvent(
                _EPOCH + at * _MICROSECOND,
                _KINDS[kind],
                None if value == _NONE else strings[value],
            )
            for at, kind, value in _EVENT.iter_unpack(packed[_HEADER.size :])
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
        )

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

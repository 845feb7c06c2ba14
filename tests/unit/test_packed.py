"""Packed tickets: exact round trips for UTC tickets, the ticket itself otherwise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from sla_monitor.engine import EventKind, Ticket, TicketEvent
from sla_monitor.packed import TicketPacker

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
WORDS = st.sampled_from(["new", "open", "pending", "resolved", "urgent", "low", "billing"])
MOMENTS = st.datetimes(
    min_value=datetime(1950, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


@st.composite
def tickets(draw: st.DrawFn) -> Ticket:
    created = draw(MOMENTS)
    offsets = sorted(draw(st.lists(st.integers(0, 10**12), max_size=8)))
    events = tuple(
        TicketEvent(
            created + timedelta(microseconds=offset),
            draw(st.sampled_from(list(EventKind))),
            draw(st.none() | WORDS),
        )
        for offset in offsets
    )
    return Ticket(
        ticket_id=draw(st.text(min_size=1, max_size=12)),
        created_at=created,
        queue=draw(WORDS),
        initial_status=draw(WORDS),
        initial_priority=draw(WORDS),
        subject=draw(st.text(max_size=40)),
        events=events,
        language=draw(st.none() | st.sampled_from(["en", "de"])),
        timezone=draw(st.none() | st.sampled_from(["Europe/Berlin", "UTC"])),
    )


@given(tickets())
def test_a_utc_ticket_unpacks_to_an_equal_ticket(ticket: Ticket) -> None:
    packer = TicketPacker()
    packed = packer.pack(ticket)
    assert isinstance(packed, bytes)
    assert packer.unpack(ticket.ticket_id, ticket.subject, packed) == ticket


def test_a_packed_ticket_is_a_few_bytes_per_event() -> None:
    ticket = Ticket(
        "1",
        T0,
        "support",
        "new",
        "normal",
        events=(
            TicketEvent(T0 + timedelta(minutes=5), EventKind.PUBLIC_REPLY),
            TicketEvent(T0 + timedelta(minutes=5), EventKind.STATUS_CHANGE, "open"),
        ),
    )
    packed = TicketPacker().pack(ticket)
    assert isinstance(packed, bytes)
    assert len(packed) == 18 + 2 * 11


def test_a_ticket_with_times_outside_utc_is_kept_as_it_is() -> None:
    berlin = timezone(timedelta(hours=1))
    ticket = Ticket("1", T0.astimezone(berlin), "support", "new", "normal")
    packer = TicketPacker()
    assert packer.pack(ticket) is ticket
    assert packer.unpack("1", "", ticket) is ticket
    late = Ticket(
        "2",
        T0,
        "support",
        "new",
        "normal",
        events=(TicketEvent(T0.astimezone(berlin), EventKind.PUBLIC_REPLY),),
    )
    assert packer.pack(late) is late


def test_a_full_string_table_keeps_new_tickets_as_they_are() -> None:
    packer = TicketPacker()
    for index in range(0xFFFF - 2):  # "new" and "normal" take two entries of the table
        assert isinstance(packer.pack(Ticket(str(index), T0, f"q{index}", "new", "normal")), bytes)
    overflowing = Ticket("x", T0, "one queue too many", "new", "normal")
    assert packer.pack(overflowing) is overflowing
    known = Ticket("y", T0, "q7", "new", "normal")
    assert packer.unpack("y", "", packer.pack(known)) == known

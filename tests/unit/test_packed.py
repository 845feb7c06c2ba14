"""Packed tickets: exact round trips for UTC tickets, the ticket itself otherwise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sla_monitor.engine import EventKind, Ticket, TicketEvent
from sla_monitor.packed import TicketPacker

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
WORDS = st.sampled_from(["new", "open", "pending", "resolved", "urgent", "low", "billing"])
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
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
        customer=draw(st.none() | st.text(max_size=30)),
        organization=draw(st.none() | st.sampled_from(["Acme", "Initech", ""])),
        attributes=draw(st.dictionaries(st.text(max_size=8), JSON, max_size=4)),
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
    assert len(packed) == 24 + 2 * 11


def test_who_the_ticket_is_for_packs_into_a_few_dozen_bytes() -> None:
    """The organization is an index; the customer and the canonical attributes are inline."""
    plain = Ticket("1", T0, "support", "new", "normal")
    contract = Ticket(
        "1",
        T0,
        "support",
        "new",
        "normal",
        customer="jane@acme.example",
        organization="Acme",
        attributes={"type": "incident", "plan": "gold"},
    )
    packer = TicketPacker()
    assert len(packer.pack(plain)) == 24
    packed = packer.pack(contract)
    assert isinstance(packed, bytes)
    assert len(packed) == 24 + len("jane@acme.example") + len('{"plan":"gold","type":"incident"}')
    assert packer.unpack("1", "", packed) == contract


def test_equal_attributes_pack_alike_and_unpack_to_one_shared_mapping() -> None:
    packer = TicketPacker()
    one = Ticket("1", T0, "support", "new", "normal", attributes={"a": 1, "b": [True, None]})
    other = Ticket("2", T0, "support", "new", "normal", attributes={"b": [True, None], "a": 1})
    assert packer.pack(one) == packer.pack(other)
    first = packer.unpack("1", "", packer.pack(one))
    second = packer.unpack("2", "", packer.pack(other))
    assert first.attributes is second.attributes
    with pytest.raises(TypeError):
        first.attributes["a"] = 2  # type: ignore[index]


def test_attributes_that_are_not_json_are_kept_as_they_are() -> None:
    packer = TicketPacker()
    odd = Ticket("1", T0, "support", "new", "normal", attributes={"when": T0})  # type: ignore[dict-item]
    assert packer.pack(odd) is odd
    nan = Ticket("2", T0, "support", "new", "normal", attributes={"x": float("nan")})
    assert packer.pack(nan) is nan


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

"""Reports: outcomes carry who they were for, and the report's arithmetic by hand."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sla_monitor.engine import EventKind, PolicySet, Ticket, TicketEvent
from sla_monitor.testing import MemoryStore
from sla_monitor.tracker import Tracker

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_unrecorded_outcomes_carry_the_customer_organization_and_policy() -> None:
    ticket = Ticket(
        ticket_id="7",
        created_at=T0,
        queue="support",
        initial_status="new",
        initial_priority="normal",
        events=(TicketEvent(at(5), EventKind.PUBLIC_REPLY, None),),
        customer="ann@acme.example",
        organization="Acme",
    )
    tracker = Tracker(PolicySet())
    outcomes = tracker.unrecorded(tracker.update(ticket, at(10)))
    assert outcomes is not None and outcomes.completions
    assert (outcomes.customer, outcomes.organization, outcomes.policy) == (
        "ann@acme.example",
        "Acme",
        "default",
    )
    store = MemoryStore()
    asyncio.run(store.record([outcomes], None))
    assert set(store.completion_customers.values()) == {("ann@acme.example", "Acme", "default")}

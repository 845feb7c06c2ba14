"""Bulk-loads a seeded helpdesk into the reference schema with COPY.

    python bench/generate.py DSN [--total N] [--open M] [--seed S] [--now ISO]

Creates the reference schema in the database at DSN (which must be empty of it) and loads
``total`` tickets of which ``open`` are open, with their events. The same seed gives the same
rows. Row triggers and foreign-key checks are off during the load (session_replication_role),
the secondary indexes are built afterwards, and the tables are analysed.

What the rows look like (times relative to ``now``):
- closed tickets: created up to 90 days ago; a customer message, one or two public replies,
  sometimes an internal note, a status change to resolved.
- open tickets, created over the last 30 hours: 35% still wait for a first reply (most are
  young), the rest were answered; 10% are pending (paused) on the customer; 5% had their
  priority raised. A share of them is therefore at risk or breached, as on a real queue.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import asyncpg

from sla_monitor.sources.sql import REFERENCE_SCHEMA

QUEUES = ("support", "billing", "hosting", "domains", "email")
PRIORITIES = ("urgent", "high", "normal", "normal", "normal", "low")
TICKET_COLUMNS = ["id", "subject", "queue", "priority", "status", "created_at", "updated_at"]
EVENT_COLUMNS = ["ticket_id", "kind", "author", "new_value", "old_value", "created_at"]
CHUNK = 50_000
SECONDARY_INDEXES = ("tickets_updated_at_id", "tickets_status", "ticket_events_ticket")

Ticket = tuple[int, str, str, str, str, datetime, datetime]
Event = tuple[int, str, str | None, str | None, str | None, datetime]


def closed_ticket(rng: random.Random, ticket_id: int, now: datetime) -> tuple[Ticket, list[Event]]:
    created = now - timedelta(seconds=rng.uniform(2 * 86400, 90 * 86400))
    replied = created + timedelta(seconds=rng.expovariate(1 / 2400))
    resolved = min(replied + timedelta(seconds=rng.expovariate(1 / 30000)), now)
    events: list[Event] = [
        (ticket_id, "customer_message", "customer", None, None, created),
        (ticket_id, "public_reply", "staff", None, None, replied),
    ]
    if rng.random() < 0.3:
        events.append((ticket_id, "internal_note", "staff", None, None, replied))
    if rng.random() < 0.4:
        events.append((ticket_id, "public_reply", "staff", None, None, resolved))
    events.append((ticket_id, "status_change", "staff", "resolved", "open", resolved))
    ticket = (
        ticket_id,
        f"ticket {ticket_id}",
        rng.choice(QUEUES),
        rng.choice(PRIORITIES),
        "resolved",
        created,
        resolved,
    )
    return ticket, events


def open_ticket(rng: random.Random, ticket_id: int, now: datetime) -> tuple[Ticket, list[Event]]:
    age = rng.uniform(0, 30 * 3600)
    created = now - timedelta(seconds=age)
    priority = rng.choice(PRIORITIES)
    status = "new"
    events: list[Event] = [(ticket_id, "customer_message", "customer", None, None, created)]
    last = created
    if rng.random() < 0.65 or age > 3 * 3600:
        reply = created + timedelta(seconds=min(age, rng.expovariate(1 / 2400)))
        events.append((ticket_id, "public_reply", "staff", None, None, reply))
        events.append((ticket_id, "status_change", "staff", "open", "new", reply))
        status, last = "open", reply
        if rng.random() < 0.1:
            events.append((ticket_id, "status_change", "staff", "pending", "open", reply))
            status = "pending"
    if rng.random() < 0.05:
        raised = created + timedelta(seconds=rng.uniform(0, age))
        if raised >= last:
            events.append((ticket_id, "priority_change", "staff", "urgent", priority, raised))
            priority, last = "urgent", raised
    ticket = (ticket_id, f"ticket {ticket_id}", rng.choice(QUEUES), priority, status, created, last)
    return ticket, events


def chunks(
    total: int, open_: int, seed: int, now: datetime
) -> Iterator[tuple[list[Ticket], list[Event]]]:
    """Tickets 1..total in chunks; every (total / open)-th one is open, spread over the ids."""
    rng = random.Random(seed)
    stride = total / open_ if open_ else float("inf")
    tickets: list[Ticket] = []
    events: list[Event] = []
    next_open = stride / 2
    for ticket_id in range(1, total + 1):
        if ticket_id >= next_open:
            next_open += stride
            ticket, new = open_ticket(rng, ticket_id, now)
        else:
            ticket, new = closed_ticket(rng, ticket_id, now)
        tickets.append(ticket)
        events.extend(new)
        if len(tickets) >= CHUNK:
            yield tickets, events
            tickets, events = [], []
    if tickets:
        yield tickets, events


async def generate(
    dsn: str, total: int, open_: int, seed: int = 1, now: datetime | None = None
) -> dict[str, float]:
    """Loads the helpdesk; returns counts and the load time."""
    now = now or datetime.now(UTC)
    began = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(REFERENCE_SCHEMA)
        for index in SECONDARY_INDEXES:
            await conn.execute(f"DROP INDEX IF EXISTS helpdesk.{index}")
        await conn.execute("SET session_replication_role = replica")
        events_total = 0
        for tickets, events in chunks(total, open_, seed, now):
            await conn.copy_records_to_table(
                "tickets", schema_name="helpdesk", records=tickets, columns=TICKET_COLUMNS
            )
            await conn.copy_records_to_table(
                "ticket_events", schema_name="helpdesk", records=events, columns=EVENT_COLUMNS
            )
            events_total += len(events)
        await conn.execute("RESET session_replication_role")
        await conn.execute("SELECT setval('helpdesk.tickets_id_seq', $1)", max(total, 1))
        await conn.execute(
            "SELECT setval('helpdesk.ticket_events_id_seq', $1)", max(events_total, 1)
        )
        await conn.execute(REFERENCE_SCHEMA)  # builds the indexes dropped above
        await conn.execute("ANALYZE helpdesk.tickets")
        await conn.execute("ANALYZE helpdesk.ticket_events")
    finally:
        await conn.close()
    seconds = time.perf_counter() - began
    return {"tickets": total, "open": open_, "events": events_total, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dsn")
    parser.add_argument("--total", type=int, default=100_000)
    parser.add_argument("--open", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--now", type=datetime.fromisoformat, default=None)
    args = parser.parse_args()
    if not 0 <= args.open <= args.total:
        parser.error("--open must be between 0 and --total")
    figures = asyncio.run(generate(args.dsn, args.total, args.open, args.seed, args.now))
    print(
        f"loaded {figures['tickets']:,.0f} tickets ({figures['open']:,.0f} open) and "
        f"{figures['events']:,.0f} events in {figures['seconds']:.1f} s"
    )


if __name__ == "__main__":
    main()

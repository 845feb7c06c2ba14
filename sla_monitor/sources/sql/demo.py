"""A simulated helpdesk for `sla-monitor demo`: customers open tickets on the reference schema,
staff answer, pause and resolve them. Its SQL is in demo.sql beside this module.

Customers belong to organizations (one has none). Staff neglect two of them (NEGLECTED): their
tickets are answered rarely and late, so their clocks breach and they turn up at risk of
churning (GET /api/v1/customers/at-risk) within minutes; the others are answered promptly."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg

from sla_monitor.sources.sql.source import REFERENCE_SCHEMA
from sla_monitor.sql import load_queries

_QUERIES = load_queries("sla_monitor.sources.sql", "demo.sql")

QUEUES = ("support", "billing", "hosting")
PRIORITIES = ("urgent", "high", "normal", "low")
SUBJECTS = (
    "Website down",
    "Invoice question",
    "Cannot send mail",
    "DNS not resolving",
    "SSL certificate expired",
    "Backup restore",
    "Slow database",
    "Password reset",
)
# Who opens tickets: (e-mail, organization), each as often as the others.
CUSTOMERS: tuple[tuple[str, str | None], ...] = (
    ("ann@acme.example", "Acme"),
    ("bob@acme.example", "Acme"),
    ("carla@globex.example", "Globex"),
    ("dev@globex.example", "Globex"),
    ("erin@initech.example", "Initech"),
    ("femi@initech.example", "Initech"),
    ("gus@umbrella.example", "Umbrella"),
    ("hana@umbrella.example", "Umbrella"),
    ("ivan@hooli.example", "Hooli"),
    ("jo@hooli.example", "Hooli"),
    ("kim@example.org", None),
)
# Customers whose tickets staff leave waiting (a first reply after ~8 minutes on average,
# against targets of 1 and 3 minutes, and little news after it): failed again and again.
NEGLECTED = frozenset({"erin@initech.example", "ivan@hooli.example"})
# Per tick, the chance that staff answer an unanswered ticket: promptly, or neglected.
ANSWER = 0.1
ANSWER_NEGLECTED = 0.002
# Per tick, the chances that staff resolve an answered ticket, set it pending, or write again.
# Served well, a ticket rarely waits for news as long as its update interval (1 or 2 minutes);
# neglected, it waits for the progress updates sla-monitor posts, late (breaching the update
# clock).
FOLLOW_UP = (0.03, 0.005, 0.03)
FOLLOW_UP_NEGLECTED = (0.004, 0.002, 0.004)


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def load_reference_schema(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(REFERENCE_SCHEMA)
    finally:
        await conn.close()


class TicketGenerator:
    """Plays a helpdesk: customers open tickets, staff answer, pause and resolve them. Every
    ticket and event is written at ``clock()`` (the wall clock unless a test injects one)."""

    def __init__(
        self,
        dsn: str,
        seed: int = 7,
        tick: float = 1.0,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.dsn = dsn
        self.random = random.Random(seed)
        self.tick = tick
        self.clock = clock

    async def run(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            while True:
                await self.step(conn)
                await asyncio.sleep(self.tick)
        finally:
            await conn.close()

    async def step(self, conn: asyncpg.Connection) -> None:
        r = self.random
        if r.random() < 0.6:
            customer, organization = r.choice(CUSTOMERS)
            await conn.execute(
                _QUERIES["open_ticket"],
                r.choice(SUBJECTS),
                r.choice(QUEUES),
                r.choices(PRIORITIES, weights=(1, 2, 5, 2))[0],
                customer,
                organization,
                self.clock(),
            )
        rows = await conn.fetch(_QUERIES["unresolved_tickets"])
        for row in rows:
            neglected = row["requester_email"] in NEGLECTED
            await self._act(conn, row["id"], row["status"], row["answered"], neglected)

    async def _act(
        self,
        conn: asyncpg.Connection,
        ticket: int,
        status: str,
        answered: bool,
        neglected: bool = False,
    ) -> None:
        r = self.random.random()
        answer = ANSWER_NEGLECTED if neglected else ANSWER
        if status == "pending":
            if r < 0.05:
                await self._event(conn, ticket, "customer_message")
                await self._status(conn, ticket, status, "open")
        elif not answered:
            if r < answer:
                await self._event(conn, ticket, "public_reply")
                await self._status(conn, ticket, status, "open")
            elif r < answer + 0.005:
                await self._event(conn, ticket, "internal_note")
        else:  # answered: resolve, wait for the customer, or write again
            resolve, pause, reply = FOLLOW_UP_NEGLECTED if neglected else FOLLOW_UP
            if r < resolve:
                await self._status(conn, ticket, status, "resolved")
            elif r < resolve + pause:
                await self._status(conn, ticket, status, "pending")
            elif r < resolve + pause + reply:
                await self._event(conn, ticket, "public_reply")

    async def _event(self, conn: asyncpg.Connection, ticket: int, kind: str) -> None:
        await conn.execute(
            _QUERIES["add_event"],
            ticket,
            kind,
            "staff" if kind in ("public_reply", "internal_note") else "customer",
            self.clock(),
        )

    async def _status(self, conn: asyncpg.Connection, ticket: int, old: str, new: str) -> None:
        async with conn.transaction():
            await conn.execute(
                _QUERIES["status_change_event"],
                ticket,
                old,
                new,
                self.clock(),
            )
            await conn.execute(_QUERIES["set_status"], ticket, new)

"""A simulated helpdesk for `sla-monitor demo`: customers open tickets on the reference schema,
staff answer, pause and resolve them. Its SQL is in demo.sql beside this module."""

from __future__ import annotations

import asyncio
import random

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


async def load_reference_schema(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(REFERENCE_SCHEMA)
    finally:
        await conn.close()


class TicketGenerator:
    """Plays a helpdesk: customers open tickets, staff answer, pause and resolve them."""

    def __init__(self, dsn: str, seed: int = 7, tick: float = 1.0) -> None:
        self.dsn = dsn
        self.random = random.Random(seed)
        self.tick = tick

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
            await conn.execute(
                _QUERIES["open_ticket"],
                r.choice(SUBJECTS),
                r.choice(QUEUES),
                r.choices(PRIORITIES, weights=(1, 2, 5, 2))[0],
                f"customer{r.randrange(1000)}@example.com",
            )
        rows = await conn.fetch(_QUERIES["unresolved_tickets"])
        for row in rows:
            await self._act(conn, row["id"], row["status"], row["answered"])

    async def _act(
        self, conn: asyncpg.Connection, ticket: int, status: str, answered: bool
    ) -> None:
        r = self.random.random()
        if status == "pending":
            if r < 0.05:
                await self._event(conn, ticket, "customer_message")
                await self._status(conn, ticket, status, "open")
        elif not answered:
            if r < 0.02:
                await self._event(conn, ticket, "public_reply")
                await self._status(conn, ticket, status, "open")
            elif r < 0.025:
                await self._event(conn, ticket, "internal_note")
        elif r < 0.008:
            await self._status(conn, ticket, status, "resolved")
        elif r < 0.012:
            await self._status(conn, ticket, status, "pending")
        elif r < 0.02:
            await self._event(conn, ticket, "public_reply")

    async def _event(self, conn: asyncpg.Connection, ticket: int, kind: str) -> None:
        await conn.execute(
            _QUERIES["add_event"],
            ticket,
            kind,
            "staff" if kind in ("public_reply", "internal_note") else "customer",
        )

    async def _status(self, conn: asyncpg.Connection, ticket: int, old: str, new: str) -> None:
        async with conn.transaction():
            await conn.execute(
                _QUERIES["status_change_event"],
                ticket,
                old,
                new,
            )
            await conn.execute(_QUERIES["set_status"], ticket, new)

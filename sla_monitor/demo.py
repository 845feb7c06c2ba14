"""`sla-monitor demo`: an embedded helpdesk whose tickets keep arriving, getting answered and
resolved, with short SLA targets so every state shows up within minutes."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import asyncpg
import structlog

from sla_monitor.config import PolicySettings, Settings
from sla_monitor.sources.sql import REFERENCE_SCHEMA

log = structlog.get_logger("sla_monitor.demo")

# The example templates of the checkout (config/templates), next to the package.
DEMO_TEMPLATES = Path(__file__).resolve().parents[1] / "config" / "templates"
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


def demo_settings(base: Settings, data_dir: Path) -> Settings:
    """The given settings on the embedded database, with minutes-long demo targets."""
    policies = {
        "urgent": PolicySettings(
            priorities=["urgent"], first_response=60, resolution=600, update_interval=60
        ),
        "default": PolicySettings(first_response=180, resolution=1200, update_interval=120),
    }
    updates = base.updates.model_copy(
        update={
            "enabled": True,
            "mode": "post",
            "min_ticket_age": 60.0,
            "quiet_hours": None,
            "templates_dir": DEMO_TEMPLATES,
        }
    )
    return base.model_copy(
        update={
            "database": base.database.model_copy(
                update={"dsn": None, "embedded_data_dir": data_dir}
            ),
            "daemon": base.daemon.model_copy(update={"poll_interval": 2.0}),
            "policies": policies,
            "updates": updates,
        }
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
                "INSERT INTO helpdesk.tickets (subject, queue, priority, status, requester_email)"
                " VALUES ($1, $2, $3, 'new', $4)",
                r.choice(SUBJECTS),
                r.choice(QUEUES),
                r.choices(PRIORITIES, weights=(1, 2, 5, 2))[0],
                f"customer{r.randrange(1000)}@example.com",
            )
        rows = await conn.fetch(
            "SELECT id, status, EXISTS (SELECT 1 FROM helpdesk.ticket_events e"
            " WHERE e.ticket_id = t.id AND e.kind = 'public_reply') AS answered"
            " FROM helpdesk.tickets t WHERE status <> ALL('{resolved,closed}')"
        )
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
            "INSERT INTO helpdesk.ticket_events (ticket_id, kind, author) VALUES ($1, $2, $3)",
            ticket,
            kind,
            "staff" if kind in ("public_reply", "internal_note") else "customer",
        )

    async def _status(self, conn: asyncpg.Connection, ticket: int, old: str, new: str) -> None:
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO helpdesk.ticket_events (ticket_id, kind, old_value, new_value)"
                " VALUES ($1, 'status_change', $2, $3)",
                ticket,
                old,
                new,
            )
            await conn.execute("UPDATE helpdesk.tickets SET status = $2 WHERE id = $1", ticket, new)

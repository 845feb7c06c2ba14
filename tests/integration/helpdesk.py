"""Hand-made tickets in the reference helpdesk schema, at explicit instants."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg

from sla_monitor.app import build_update_planner
from sla_monitor.config import Settings, escalation_levels, policy_set
from sla_monitor.daemon import Daemon
from sla_monitor.daemon_options import Timing
from sla_monitor.escalation_planner import EscalationPlanner
from sla_monitor.judge import Judge
from sla_monitor.metrics import Metrics
from sla_monitor.sources.sql import REFERENCE_SCHEMA, SqlSource
from sla_monitor.store import StateStore
from sla_monitor.tracker import Tracker

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


class Helpdesk:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    @classmethod
    async def create(cls, conn: asyncpg.Connection) -> Helpdesk:
        await conn.execute(REFERENCE_SCHEMA)
        return cls(conn)

    async def ticket(
        self,
        created: float,
        priority: str = "normal",
        queue: str = "support",
        status: str = "new",
        subject: str = "Website down",
    ) -> str:
        ticket_id = await self.conn.fetchval(
            "INSERT INTO helpdesk.tickets (subject, queue, priority, status, created_at)"
            " VALUES ($1, $2, $3, $4, $5) RETURNING id",
            subject,
            queue,
            priority,
            status,
            at(created),
        )
        return str(ticket_id)

    async def event(
        self,
        ticket: str,
        minutes: float,
        kind: str,
        value: str | None = None,
        old: str | None = None,
    ) -> None:
        await self.conn.execute(
            "INSERT INTO helpdesk.ticket_events (ticket_id, kind, new_value, old_value,"
            " created_at) VALUES ($1, $2, $3, $4, $5)",
            int(ticket),
            kind,
            value,
            old,
            at(minutes),
        )

    async def reply(self, ticket: str, minutes: float) -> None:
        await self.event(ticket, minutes, "public_reply")

    async def set_status(self, ticket: str, minutes: float, status: str) -> None:
        old = await self.conn.fetchval(
            "SELECT status FROM helpdesk.tickets WHERE id = $1", int(ticket)
        )
        await self.event(ticket, minutes, "status_change", status, old)
        await self.conn.execute(
            "UPDATE helpdesk.tickets SET status = $2 WHERE id = $1", int(ticket), status
        )


class FakeClock:
    """The daemon's injected wall clock."""

    def __init__(self, minutes: float = 0) -> None:
        self.now = at(minutes)

    def set(self, minutes: float) -> None:
        self.now = at(minutes)

    def __call__(self) -> datetime:
        return self.now


def make_daemon(
    pool: asyncpg.Pool, clock: Callable[[], datetime], settings: Settings | None = None
) -> Daemon:
    settings = settings or Settings()
    policies = policy_set(settings)
    tracker = Tracker(policies)
    source = SqlSource(
        pool,
        "helpdesk",
        settings.source.changed_tickets_query,
        settings.source.open_tickets_query,
        settings.source.events_query,
        settings.statuses.resolved,
        initial_status="new",
    )
    judge = Judge(
        "helpdesk",
        tracker,
        Metrics(tracker, max_queues=settings.daemon.max_queues),
        EscalationPlanner(
            "helpdesk",
            escalation_levels(settings),
            settings.escalation.ticket_url,
            settings.escalation.backlog,
            settings.http.public_url,
        ),
        build_update_planner(settings),
    )
    return Daemon(
        source=source,
        store=StateStore(pool, "sla_monitor", "helpdesk"),
        judge=judge,
        timing=Timing(poll_interval=1.0, backfill=24 * 3600.0),
        clock=clock,
    )


def sample(daemon: Daemon, name: str, **labels: str) -> float:
    value = daemon.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def open_gauge(
    daemon: Daemon, clock: str, state: str, priority: str = "normal", queue: str = "support"
) -> float:
    """sla_monitor_open_tickets for one clock, state, priority and queue."""
    return sample(
        daemon, "sla_monitor_open_tickets", clock=clock, state=state, priority=priority, queue=queue
    )


def completed(
    daemon: Daemon,
    clock: str,
    outcome: str = "met",
    priority: str = "normal",
    queue: str = "support",
) -> float:
    """sla_monitor_sla_completed_total for one clock, outcome, priority and queue."""
    return sample(
        daemon,
        "sla_monitor_sla_completed_total",
        clock=clock,
        outcome=outcome,
        priority=priority,
        queue=queue,
    )

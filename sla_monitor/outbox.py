"""Delivers the outbox: one row at a time, each in its own transaction, retried with backoff.

A row is claimed with FOR UPDATE SKIP LOCKED, sent, and marked delivered in the same
transaction, so a crash before the commit leaves it pending (delivered again later, never lost);
the dedup key every channel receives makes such a repeat harmless. A row waits while an earlier
row of the same escalation and channel is undelivered, so a resolve never overtakes its trigger.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
import structlog

from sla_monitor.metrics import Metrics
from sla_monitor.notifiers import DeliveryError, Notifier
from sla_monitor.notifiers.alertmanager import AlertmanagerNotifier

log = structlog.get_logger("sla_monitor.outbox")

_CLAIM = """
SELECT o.id, o.dedup_key, o.action, o.channel, o.payload, o.attempts
FROM {schema}.outbox o
WHERE o.delivered_at IS NULL AND o.next_attempt_at <= now()
  AND NOT EXISTS (
      SELECT 1 FROM {schema}.outbox earlier
      WHERE earlier.dedup_key = o.dedup_key AND earlier.channel = o.channel
        AND earlier.id < o.id AND earlier.delivered_at IS NULL)
ORDER BY o.id
LIMIT 1
FOR UPDATE OF o SKIP LOCKED
"""
_DELIVERED = (
    "UPDATE {schema}.outbox SET delivered_at = now(), attempts = attempts + 1, "
    "last_error = NULL WHERE id = $1"
)
_RETRY = (
    "UPDATE {schema}.outbox SET attempts = attempts + 1, last_error = $2, "
    "next_attempt_at = now() + make_interval(secs => $3) WHERE id = $1"
)
_BACKLOG = (
    "SELECT count(*) AS pending, extract(epoch FROM now() - min(created_at)) AS oldest "
    "FROM {schema}.outbox WHERE delivered_at IS NULL"
)
_NEXT_DUE = (
    "SELECT extract(epoch FROM min(next_attempt_at) - now()) FROM {schema}.outbox "
    "WHERE delivered_at IS NULL"
)
_ACTIVE_FOR = (
    "SELECT alert FROM {schema}.escalations "
    "WHERE resolved_at IS NULL AND $1 = ANY(channels) ORDER BY triggered_at"
)

DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


class OutboxSender:
    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str,
        notifiers: dict[str, Notifier],
        metrics: Metrics,
        timeout: float = 10.0,
        retry_initial: float = 1.0,
        retry_max: float = 300.0,
    ) -> None:
        self._pool = pool
        self._schema = schema
        self.notifiers = notifiers
        self.metrics = metrics
        self.timeout = timeout
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.wakeup = asyncio.Event()
        self._stop = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None

    def _sql(self, template: str) -> str:
        return template.replace("{schema}", self._schema)

    def stop(self) -> None:
        self._stop.set()
        self.wakeup.set()

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def backoff(self, attempts: int) -> float:
        """Exponential with full jitter in its upper half: initial * 2^attempts, capped."""
        ceiling = min(self.retry_max, self.retry_initial * 2 ** min(attempts, 30))
        return float(ceiling / 2 + random.random() * ceiling / 2)

    async def deliver_one(self) -> bool:
        """Delivers (or reschedules) the oldest due row; False when none is due."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(self._sql(_CLAIM))
            if row is None:
                return False
            alert: dict[str, Any] = json.loads(row["payload"])
            level = alert.get("labels", {}).get("level", "")
            notifier = self.notifiers.get(row["channel"])
            try:
                if notifier is None:
                    raise DeliveryError(f"channel {row['channel']!r} is not configured")
                await notifier.deliver(self.session(), row["action"], alert)
            except DeliveryError as error:
                delay = self.backoff(row["attempts"])
                await conn.execute(self._sql(_RETRY), row["id"], str(error)[:500], delay)
                self._count(row["action"], level, row["channel"], "failed")
                log.warning(
                    "delivery_failed",
                    channel=row["channel"],
                    action=row["action"],
                    dedup_key=row["dedup_key"],
                    attempts=row["attempts"] + 1,
                    retry_in=round(delay, 1),
                    error=str(error),
                )
                return True
            await conn.execute(self._sql(_DELIVERED), row["id"])
        self._count(row["action"], level, row["channel"], "delivered")
        log.info(
            "delivered", channel=row["channel"], action=row["action"], dedup_key=row["dedup_key"]
        )
        return True

    def _count(self, action: str, level: str, channel: str, result: str) -> None:
        if action == "update":
            self.metrics.customer_updates.labels("sent" if result == "delivered" else result).inc()
        else:
            self.metrics.escalations.labels(level, channel, result).inc()

    async def deliver_due(self, limit: int = 1000) -> int:
        count = 0
        while count < limit and await self.deliver_one():
            count += 1
        await self.export_backlog()
        return count

    async def export_backlog(self) -> None:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(self._sql(_BACKLOG))
        self.metrics.outbox_pending.set(row["pending"])
        self.metrics.outbox_oldest_age.set(float(row["oldest"] or 0))

    async def resend_active(self) -> int:
        """Re-sends every active escalation to Alertmanager so none expires while active."""
        sent = 0
        for notifier in self.notifiers.values():
            if not isinstance(notifier, AlertmanagerNotifier):
                continue
            async with self._pool.acquire() as conn:
                rows = await conn.fetch(self._sql(_ACTIVE_FOR), notifier.name)
            alerts = [json.loads(row["alert"]) for row in rows]
            if alerts:
                try:
                    await notifier.resend(
                        self.session(), alerts, datetime.now(UTC) + notifier.lifetime
                    )
                    sent += len(alerts)
                except DeliveryError as error:
                    log.warning("resend_failed", channel=notifier.name, error=str(error))
        return sent

    async def run(self, resend_interval: float | None = None) -> None:
        """Delivers until stopped: woken by the daemon after each flush, else every second."""
        loop = asyncio.get_running_loop()
        next_resend = loop.time() + (resend_interval or 0)
        while not self._stop.is_set():
            self.wakeup.clear()
            wait = 1.0
            try:
                await self.deliver_due()
                if resend_interval is not None and loop.time() >= next_resend:
                    next_resend = loop.time() + resend_interval
                    await self.resend_active()
                async with self._pool.acquire() as conn:
                    due = await conn.fetchval(self._sql(_NEXT_DUE))
                if due is not None:
                    wait = max(0.0, min(wait, float(due)))
            except DB_ERRORS as error:
                log.error("outbox_unavailable", error=f"{type(error).__name__}: {error}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), timeout=wait)

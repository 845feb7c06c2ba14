"""Delivers the outbox: one sender task per channel, one row at a time, each in its own
transaction.

A row is claimed with FOR UPDATE SKIP LOCKED, sent, and marked delivered in the same
transaction, so a crash (or a stop) before the commit leaves it pending (delivered again later,
never lost); the dedup key every channel receives makes such a repeat harmless. A row waits
while an earlier row of the same key and channel is undelivered, so a resolve never overtakes
its trigger.

Channels are independent: each has its own task, claims only its own rows and has its own
circuit. After a failure the channel is *probing*: instead of every due row, one row (the one
due soonest, due yet or not) is tried every ``probe_interval``; the first success makes the
channel's backlog due at once, so a channel that comes back is drained within seconds whatever
its rows' backoff. A refusal that repeating cannot change (PermanentDeliveryError: a 4xx) parks
its row until the maximum backoff or ``retry_parked()`` (called at start), and never blocks
other rows. An update no longer owed when its turn comes (``still_owed``) is cancelled unsent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import aiohttp
import asyncpg
import structlog

from sla_monitor.metrics import Metrics
from sla_monitor.notifiers import DeliveryError, Notifier, PermanentDeliveryError
from sla_monitor.notifiers.alertmanager import AlertmanagerNotifier

log = structlog.get_logger("sla_monitor.outbox")

_CLAIM = """
SELECT o.id, o.dedup_key, o.action, o.channel, o.payload, o.attempts
FROM {schema}.outbox o
WHERE o.delivered_at IS NULL AND {which}
  AND NOT EXISTS (
      SELECT 1 FROM {schema}.outbox earlier
      WHERE earlier.dedup_key = o.dedup_key AND earlier.channel = o.channel
        AND earlier.id < o.id AND earlier.delivered_at IS NULL)
ORDER BY {order}
LIMIT 1
FOR UPDATE OF o SKIP LOCKED
"""
_DUE = "o.next_attempt_at <= now()"
# Any channel (deliver_one), one channel, one channel's probe (parked rows only once due),
# and channels no longer configured.
_CLAIM_ANY = _CLAIM.format(schema="{schema}", which=_DUE, order="o.id")
_CLAIM_CHANNEL = _CLAIM.format(schema="{schema}", which=f"o.channel = $1 AND {_DUE}", order="o.id")
_CLAIM_PROBE = _CLAIM.format(
    schema="{schema}",
    which=f"o.channel = $1 AND (o.parked_at IS NULL OR {_DUE})",
    order="o.next_attempt_at, o.id",
)
_CLAIM_ORPHAN = _CLAIM.format(
    schema="{schema}", which=f"o.channel <> ALL($1::text[]) AND {_DUE}", order="o.id"
)
_DELIVERED = (
    "UPDATE {schema}.outbox SET delivered_at = now(), attempts = attempts + 1, "
    "last_error = NULL, parked_at = NULL WHERE id = $1"
)
_RETRY = (
    "UPDATE {schema}.outbox SET attempts = attempts + 1, last_error = $2, "
    "next_attempt_at = now() + make_interval(secs => $3), "
    "parked_at = CASE WHEN $4 THEN now() END WHERE id = $1"
)
_DEFER = (
    "UPDATE {schema}.outbox SET next_attempt_at = now() + make_interval(secs => $2) WHERE id = $1"
)
CANCELLED = "cancelled: ticket no longer owes an update"
_CANCEL = (
    "UPDATE {schema}.outbox SET delivered_at = now(), cancelled_at = now(), "
    f"last_error = '{CANCELLED}' WHERE id = $1"
)
# A channel that answers again: its backlog is due now, whatever each row's backoff.
_RECOVERED = (
    "UPDATE {schema}.outbox SET next_attempt_at = now() WHERE channel = $1 "
    "AND delivered_at IS NULL AND parked_at IS NULL AND next_attempt_at > now()"
)
_RETRY_PARKED = (
    "UPDATE {schema}.outbox SET next_attempt_at = now(), parked_at = NULL "
    "WHERE delivered_at IS NULL AND parked_at IS NOT NULL AND ($1::text IS NULL OR channel = $1)"
)
_BACKLOG = (
    "SELECT count(*) AS pending, extract(epoch FROM now() - min(created_at)) AS oldest "
    "FROM {schema}.outbox WHERE delivered_at IS NULL"
)
# Only rows not yet due: a due row that cannot be claimed (it waits for an earlier row of its
# key, or another sender holds it) is looked at again on the next tick, not in a busy loop.
_NEXT_DUE = (
    "SELECT extract(epoch FROM min(next_attempt_at) - now()) FROM {schema}.outbox "
    "WHERE delivered_at IS NULL AND channel = $1 AND next_attempt_at > now()"
)
_ACTIVE_FOR = (
    "SELECT alert FROM {schema}.escalations "
    "WHERE resolved_at IS NULL AND $1 = ANY(channels) ORDER BY triggered_at"
)

DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)
TICK = 1.0  # the longest a sender sleeps without looking at the outbox
# While the daemon cannot tell whether an update is still owed (its first sync), the update
# waits this long before it is looked at again.
UNKNOWN_OWED_DELAY = 1.0


class Outcome(Enum):
    DELIVERED = "delivered"
    FAILED = "failed"
    SKIPPED = "skipped"  # cancelled or deferred: says nothing about the channel


@dataclass
class _Attempt:
    outcome: Outcome
    retry_after: float | None = None


@dataclass
class _Channel:
    name: str
    # Unknown at start: probe first, so a restart after an outage drains the backlog at once.
    probing: bool = True
    not_before: float = 0.0  # loop time of the next probe
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)


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
        probe_interval: float = 2.0,
        still_owed: Callable[[str], bool | None] | None = None,
    ) -> None:
        """``still_owed(ticket_id)``: asked right before an update is sent; False cancels it,
        None (not known yet) defers it briefly."""
        self._pool = pool
        self._schema = schema
        self.notifiers = notifiers
        self.metrics = metrics
        self.timeout = timeout
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.probe_interval = min(probe_interval, retry_max)
        self.still_owed = still_owed
        self._channels = {name: _Channel(name) for name in notifiers}
        self._stop = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        for name in notifiers:
            self._health(name, None)

    def _sql(self, template: str) -> str:
        return template.replace("{schema}", self._schema)

    def wake(self) -> None:
        """New rows were committed: every channel looks at once."""
        for channel in self._channels.values():
            channel.wakeup.set()

    def stop(self) -> None:
        self._stop.set()
        self.wake()

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

    def _health(self, channel: str, error: DeliveryError | None) -> None:
        if channel not in self._channels:
            return  # labels stay bounded: configured channels only
        self.metrics.channel_up.labels(channel).set(0 if error else 1)
        self.metrics.channel_health[channel] = {
            "up": error is None,
            "error": None if error is None else str(error),
            "permanent": isinstance(error, PermanentDeliveryError),
        }

    async def deliver_one(self, channel: str | None = None) -> bool:
        """Delivers (or reschedules) the oldest due row, of ``channel`` if given; False when
        none is due."""
        if channel is None:
            return await self._attempt(_CLAIM_ANY) is not None
        return await self._attempt(_CLAIM_CHANNEL, channel) is not None

    async def _attempt(self, claim: str, *args: Any) -> _Attempt | None:
        """Claims one row with ``claim``, sends it and marks it, in one transaction."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(self._sql(claim), *args)
            if row is None:
                return None
            alert: dict[str, Any] = json.loads(row["payload"])
            level = alert.get("labels", {}).get("level", "")
            channel, action = row["channel"], row["action"]
            if action == "update" and self.still_owed is not None:
                owed = self.still_owed(str(alert.get("ticket_id")))
                if owed is None:
                    await conn.execute(self._sql(_DEFER), row["id"], UNKNOWN_OWED_DELAY)
                    return _Attempt(Outcome.SKIPPED)
                if not owed:
                    await conn.execute(self._sql(_CANCEL), row["id"])
                    self.metrics.customer_updates.labels("cancelled").inc()
                    log.info("update_cancelled", channel=channel, dedup_key=row["dedup_key"])
                    return _Attempt(Outcome.SKIPPED)
            notifier = self.notifiers.get(channel)
            try:
                if notifier is None:
                    raise PermanentDeliveryError(f"channel {channel!r} is not configured", 0)
                await notifier.deliver(self.session(), action, alert)
            except DeliveryError as error:
                permanent = isinstance(error, PermanentDeliveryError)
                delay = self.retry_max if permanent else self.backoff(row["attempts"])
                if error.retry_after is not None:
                    delay = min(self.retry_max, max(delay, error.retry_after))
                await conn.execute(self._sql(_RETRY), row["id"], str(error)[:500], delay, permanent)
                self._count(action, level, channel, "failed")
                self._health(channel, error)
                fields = {
                    "channel": channel,
                    "action": action,
                    "dedup_key": row["dedup_key"],
                    "attempts": row["attempts"] + 1,
                    "retry_in": round(delay, 1),
                    "error": str(error),
                }
                if isinstance(error, PermanentDeliveryError):
                    # A configuration problem: repeating cannot help, someone must look.
                    log.error("delivery_refused", status=error.status, parked=True, **fields)
                else:
                    log.warning("delivery_failed", **fields)
                return _Attempt(Outcome.FAILED, error.retry_after)
            await conn.execute(self._sql(_DELIVERED), row["id"])
        self._count(action, level, channel, "delivered")
        self._health(channel, None)
        log.info("delivered", channel=channel, action=action, dedup_key=row["dedup_key"])
        return _Attempt(Outcome.DELIVERED)

    def _count(self, action: str, level: str, channel: str, result: str) -> None:
        if action == "update":
            self.metrics.customer_updates.labels("sent" if result == "delivered" else result).inc()
        else:
            self.metrics.escalations.labels(level, channel, result).inc()

    async def deliver_due(self, limit: int = 1000) -> int:
        """Delivers (or reschedules) due rows of every channel in id order, at most ``limit``;
        returns how many were claimed."""
        count = 0
        while count < limit and await self.deliver_one():
            count += 1
        await self.export_backlog()
        return count

    async def retry_parked(self, channel: str | None = None) -> int:
        """Makes the rows parked by a refusal due now (of ``channel``, or all): after the
        configuration changed. Returns how many."""
        async with self._pool.acquire() as conn:
            status = await conn.execute(self._sql(_RETRY_PARKED), channel)
        for state in self._channels.values():
            if channel is None or state.name == channel:
                state.not_before = 0.0
                state.wakeup.set()
        return int(status.split()[-1])

    async def export_backlog(self) -> None:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(self._sql(_BACKLOG))
        self.metrics.outbox_pending.set(row["pending"])
        self.metrics.outbox_oldest_age.set(float(row["oldest"] or 0))

    async def resend_active(self) -> int:
        """Re-sends every active escalation to Alertmanager so none expires while active."""
        sent = 0
        for notifier in self.notifiers.values():
            if isinstance(notifier, AlertmanagerNotifier):
                sent += await self._resend(notifier)
        return sent

    async def _resend(self, notifier: AlertmanagerNotifier) -> int:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(self._sql(_ACTIVE_FOR), notifier.name)
        alerts = [json.loads(row["alert"]) for row in rows]
        if not alerts:
            return 0
        try:
            await notifier.resend(self.session(), alerts, datetime.now(UTC) + notifier.lifetime)
        except DeliveryError as error:
            log.warning("resend_failed", channel=notifier.name, error=str(error))
            return 0
        return len(alerts)

    async def _channel_pass(self, state: _Channel) -> float:
        """Delivers what the channel's circuit allows now; returns the seconds until the next
        pass is due (a wakeup may come sooner)."""
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            if state.probing:
                if (wait := state.not_before - loop.time()) > 0:
                    return wait
                attempt = await self._attempt(_CLAIM_PROBE, state.name)
            else:
                attempt = await self._attempt(_CLAIM_CHANNEL, state.name)
            if attempt is None:
                break
            if attempt.outcome is Outcome.FAILED:
                state.probing = True
                pause = max(self.probe_interval, min(attempt.retry_after or 0, self.retry_max))
                state.not_before = loop.time() + pause
                return pause
            if attempt.outcome is Outcome.DELIVERED and state.probing:
                state.probing = False
                async with self._pool.acquire() as conn:
                    await conn.execute(self._sql(_RECOVERED), state.name)
                log.info("channel_recovered", channel=state.name)
        async with self._pool.acquire() as conn:
            due = await conn.fetchval(self._sql(_NEXT_DUE), state.name)
        return TICK if due is None or state.probing else min(TICK, float(due))

    async def _run_channel(self, state: _Channel, resend_interval: float | None) -> None:
        loop = asyncio.get_running_loop()
        notifier = self.notifiers[state.name]
        resends = isinstance(notifier, AlertmanagerNotifier) and resend_interval is not None
        next_resend = loop.time() + (resend_interval or 0)
        while not self._stop.is_set():
            state.wakeup.clear()
            wait = TICK
            try:
                wait = await self._channel_pass(state)
                if resends and loop.time() >= next_resend:
                    assert isinstance(notifier, AlertmanagerNotifier) and resend_interval
                    next_resend = loop.time() + resend_interval
                    await self._resend(notifier)
            except DB_ERRORS as error:
                log.error(
                    "outbox_unavailable",
                    channel=state.name,
                    error=f"{type(error).__name__}: {error}",
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.wakeup.wait(), timeout=max(0.0, wait))

    async def _housekeeping(self) -> None:
        """The backlog gauges, and rows of channels no longer configured (parked, named)."""
        while not self._stop.is_set():
            try:
                while await self._attempt(_CLAIM_ORPHAN, list(self.notifiers)) is not None:
                    pass
                await self.export_backlog()
            except DB_ERRORS as error:
                log.error("outbox_unavailable", error=f"{type(error).__name__}: {error}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=TICK)

    async def run(self, resend_interval: float | None = None) -> None:
        """Delivers until stopped: one task per channel (woken by the daemon after each flush,
        else every second) and one for housekeeping. Parked rows are retried once at start:
        channel settings change with a restart."""
        with contextlib.suppress(*DB_ERRORS):
            await self.retry_parked()
        tasks = [
            asyncio.create_task(self._run_channel(state, resend_interval))
            for state in self._channels.values()
        ]
        tasks.append(asyncio.create_task(self._housekeeping()))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

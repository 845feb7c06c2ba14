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

The storm guard: beyond ``max_pages_per_minute`` triggers on a channel in one minute (of the
sender's clock), a further trigger is folded into that channel's digest of the minute, in its
claim's transaction: the row is marked delivered with the digest's key (``<channel>/digest/
<minute>``, deterministic), and the digest is queued due when the minute ends, so a crash never
loses a folded page nor sends a digest twice under two keys. A digest tells of every row folded
into it (``digest_alert``). The count per minute is kept in memory: a restart within a minute
may send up to twice the limit in it. A first start's summaries and the digests themselves are
never folded.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

import aiohttp
import structlog

from sla_monitor.backoff import backoff
from sla_monitor.database import Pool
from sla_monitor.errors import DatabaseUnavailable
from sla_monitor.escalation_planner import helpdesk_url
from sla_monitor.metrics import Metrics
from sla_monitor.notifiers import DeliveryError, Notifier, PermanentDeliveryError
from sla_monitor.notifiers.alertmanager import AlertmanagerNotifier
from sla_monitor.store.outbox import ClaimKind, Fence, OutboxStore

log = structlog.get_logger("sla_monitor.outbox")

CANCELLED = "cancelled: ticket no longer owes an update"
TICK = 1.0  # the longest a sender sleeps without looking at the outbox
# While the daemon cannot tell whether an update is still owed (its first sync), the update
# waits this long before it is looked at again.
UNKNOWN_OWED_DELAY = 1.0
# A digest is due this long after its minute ends: its minute is the sender's clock, the
# instant it is due the database's.
DIGEST_MARGIN = timedelta(seconds=5)
DIGEST_LISTED = 20  # tickets a digest names; it counts the others


def utcnow() -> datetime:
    return datetime.now(UTC)


def digest_key(channel: str, minute: datetime) -> str:
    return f"{channel}/digest/{minute.strftime('%Y-%m-%dT%H:%MZ')}"


def digest_alert(stub: dict[str, Any], folded: list[dict[str, Any]]) -> dict[str, Any]:
    """The alert of a digest: how many triggers were folded into it, naming the first
    ``DIGEST_LISTED`` tickets (with level and clock), linking to the helpdesk."""
    named = [
        f"{a['labels'].get('ticket_id', '?')} ({a['labels'].get('level', '?')}, "
        f"{a['labels'].get('clock', '?')})"
        for a in folded[:DIGEST_LISTED]
    ]
    more = len(folded) - len(named)
    noun = "escalation" if len(folded) == 1 else "escalations"
    text = f"{len(folded)} more {noun} in this minute: " + ", ".join(named)
    if more > 0:
        text += f" and {more} more"
    first = folded[0]["annotations"] if folded else {}
    return {
        **stub,
        "annotations": {
            "summary": text,
            "count": str(len(folded)),
            "tickets": ",".join(str(a["labels"].get("ticket_id", "")) for a in folded),
            "ticket_url": helpdesk_url(first.get("ticket_url", "")),
        },
    }


class _PageBudget:
    """Triggers sent per channel in the current minute."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._spent: dict[str, tuple[datetime, int]] = {}

    def take(self, channel: str, minute: datetime) -> bool:
        """True (and counted) while the channel's minute has room for one more page."""
        if self.limit is None:
            return True
        at, spent = self._spent.get(channel, (minute, 0))
        if at != minute:
            spent = 0
        if spent >= self.limit:
            return False
        self._spent[channel] = (minute, spent + 1)
        return True


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
        pool: Pool,
        schema: str,
        notifiers: dict[str, Notifier],
        metrics: Metrics,
        timeout: float = 10.0,
        retry_initial: float = 1.0,
        retry_max: float = 300.0,
        probe_interval: float = 2.0,
        still_owed: Callable[[str], bool | None] | None = None,
        max_pages_per_minute: int | None = None,
        clock: Callable[[], datetime] = utcnow,
        may_send: Callable[[], bool] | None = None,
        fence: Fence | None = None,
    ) -> None:
        """``may_send()``: asked before every claim (and resend), False while this replica
        is not the leader; ``fence(conn)``: the same asked by the database in the claim's
        transaction (see OutboxStore). ``still_owed(ticket_id)``: asked right before an
        update is sent; False cancels it, None (not known yet) defers it briefly.
        ``max_pages_per_minute``: the storm guard's triggers per channel and minute (None: no
        guard); ``clock`` tells the minute."""
        self._outbox = OutboxStore(pool, schema, fence)
        self.may_send = may_send
        self.notifiers = notifiers
        self.metrics = metrics
        self.timeout = timeout
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.probe_interval = min(probe_interval, retry_max)
        self.still_owed = still_owed
        self.clock = clock
        self._budget = _PageBudget(max_pages_per_minute)
        self._channels = {name: _Channel(name) for name in notifiers}
        self._stop = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        for name in notifiers:
            self._health(name, None)

    def wake(self) -> None:
        """New rows were committed: every channel looks at once."""
        for channel in self._channels.values():
            channel.wakeup.set()

    def restart(self) -> None:
        """Ready to run again after a stop (a replica leading again)."""
        self._stop.clear()

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
        return backoff(attempts, self.retry_initial, self.retry_max, random.random())

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
            return await self._attempt("claim_any") is not None
        return await self._attempt("claim_channel", channel) is not None

    async def _attempt(self, claim: ClaimKind, *args: Any) -> _Attempt | None:
        """Claims one row with ``claim``, sends it and marks it, in one transaction."""
        if self.may_send is not None and not self.may_send():
            return None
        async with self._outbox.claim(claim, *args) as claimed:
            if claimed is None:
                return None
            row = claimed.row
            alert = row.payload
            level = alert.get("labels", {}).get("level", "")
            channel, action = row.channel, row.action
            if action == "update" and self.still_owed is not None:
                owed = self.still_owed(str(alert.get("ticket_id")))
                if owed is None:
                    await claimed.defer(UNKNOWN_OWED_DELAY)
                    return _Attempt(Outcome.SKIPPED)
                if not owed:
                    await claimed.cancel(CANCELLED)
                    self.metrics.customer_updates.labels("cancelled").inc()
                    log.info("update_cancelled", channel=channel, dedup_key=row.dedup_key)
                    return _Attempt(Outcome.SKIPPED)
            kind = alert.get("kind")
            if action == "trigger" and kind is None and channel in self._channels:
                minute = self.clock().replace(second=0, microsecond=0)
                if not self._budget.take(channel, minute):
                    key = digest_key(channel, minute)
                    stub = {
                        "dedup_key": key,
                        "kind": "digest",
                        "labels": {"alertname": "SLAEscalationDigest", "level": "digest"},
                        "startsAt": minute.isoformat(),
                    }
                    await claimed.digest(key, stub, minute + timedelta(minutes=1) + DIGEST_MARGIN)
                    self.metrics.pages_digested.labels(channel).inc()
                    log.info("page_digested", channel=channel, dedup_key=row.dedup_key, digest=key)
                    return _Attempt(Outcome.SKIPPED)
            elif kind == "digest":
                # Sent only once its minute is over by the clock that folds into it: after
                # that, nothing more is folded under its key.
                due = datetime.fromisoformat(alert["startsAt"]) + timedelta(minutes=1)
                if (now := self.clock()) < due:
                    await claimed.defer((due + DIGEST_MARGIN - now).total_seconds())
                    return _Attempt(Outcome.SKIPPED)
                alert = digest_alert(alert, await claimed.digested())
            notifier = self.notifiers.get(channel)
            try:
                if notifier is None:
                    raise PermanentDeliveryError(f"channel {channel!r} is not configured", 0)
                try:
                    await notifier.deliver(self.session(), action, alert)
                except DeliveryError:
                    raise
                except Exception as bug:
                    # A notifier that fails on this one message (a payload it cannot render, a
                    # bug) must not stop its channel or crash-loop the service: the row is
                    # parked like a refused one, with the traceback in the log.
                    log.exception(
                        "notifier_failed", channel=channel, dedup_key=row.dedup_key, exc_info=bug
                    )
                    raise PermanentDeliveryError(
                        f"{type(bug).__name__} in the {channel} notifier (see the log)", 0
                    ) from bug
            except DeliveryError as error:
                permanent = isinstance(error, PermanentDeliveryError)
                delay = self.retry_max if permanent else self.backoff(row.attempts)
                if error.retry_after is not None:
                    delay = min(self.retry_max, max(delay, error.retry_after))
                await claimed.retry(str(error)[:500], delay, permanent)
                self._count(action, level, channel, "failed")
                self._health(channel, error)
                fields = {
                    "channel": channel,
                    "action": action,
                    "dedup_key": row.dedup_key,
                    "attempts": row.attempts + 1,
                    "retry_in": round(delay, 1),
                    "error": str(error),
                }
                if isinstance(error, PermanentDeliveryError):
                    # A configuration problem: repeating cannot help, someone must look.
                    log.error("delivery_refused", status=error.status, parked=True, **fields)
                else:
                    log.warning("delivery_failed", **fields)
                return _Attempt(Outcome.FAILED, error.retry_after)
            await claimed.delivered()
        self._count(action, level, channel, "delivered")
        self._health(channel, None)
        log.info("delivered", channel=channel, action=action, dedup_key=row.dedup_key)
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
        count = await self._outbox.retry_parked(channel)
        for state in self._channels.values():
            if channel is None or state.name == channel:
                state.not_before = 0.0
                state.wakeup.set()
        return count

    async def export_backlog(self) -> None:
        pending, oldest = await self._outbox.backlog()
        self.metrics.outbox_pending.set(pending)
        self.metrics.outbox_oldest_age.set(oldest)

    async def resend_active(self) -> int:
        """Re-sends every active escalation to Alertmanager so none expires while active."""
        sent = 0
        for notifier in self.notifiers.values():
            if isinstance(notifier, AlertmanagerNotifier):
                sent += await self._resend(notifier)
        return sent

    async def _resend(self, notifier: AlertmanagerNotifier) -> int:
        if self.may_send is not None and not self.may_send():
            return 0
        alerts = await self._outbox.active_alerts(notifier.name)
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
                attempt = await self._attempt("claim_probe", state.name)
            else:
                attempt = await self._attempt("claim_channel", state.name)
            if attempt is None:
                break
            if attempt.outcome is Outcome.FAILED:
                state.probing = True
                pause = max(self.probe_interval, min(attempt.retry_after or 0, self.retry_max))
                state.not_before = loop.time() + pause
                return pause
            if attempt.outcome is Outcome.DELIVERED and state.probing:
                state.probing = False
                await self._outbox.recovered(state.name)
                log.info("channel_recovered", channel=state.name)
        due = await self._outbox.next_due(state.name)
        return TICK if due is None or state.probing else min(TICK, due)

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
            except DatabaseUnavailable as error:
                log.error("outbox_unavailable", channel=state.name, error=str(error))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.wakeup.wait(), timeout=max(0.0, wait))

    async def _housekeeping(self) -> None:
        """The backlog gauges, and rows of channels no longer configured (parked, named)."""
        while not self._stop.is_set():
            try:
                while await self._attempt("claim_orphan", list(self.notifiers)) is not None:
                    pass
                await self.export_backlog()
            except DatabaseUnavailable as error:
                log.error("outbox_unavailable", error=str(error))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=TICK)

    async def run(self, resend_interval: float | None = None) -> None:
        """Delivers until stopped: one task per channel (woken by the daemon after each flush,
        else every second) and one for housekeeping. Parked rows are retried once at start:
        channel settings change with a restart."""
        with contextlib.suppress(DatabaseUnavailable):
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

"""The scheduler loop: poll the source, feed the engine, record outcomes, export metrics.

Data flows one way: source -> tracker (engine) -> state store -> metrics. A database outage
marks the source down and the daemon retries until it returns; nothing is counted twice
because the store records every breach and completion once.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog

from sla_monitor.alerts import escalation_row
from sla_monitor.backoff import backoff
from sla_monitor.engine import PolicySet, TicketEvaluation
from sla_monitor.engine.clocks import TicketError
from sla_monitor.engine.escalation import EscalationLevel, active_escalations
from sla_monitor.errors import DatabaseUnavailable
from sla_monitor.metrics import Metrics
from sla_monitor.records import (
    EscalationRow,
    EscalationState,
    NewlyRecorded,
    OwedUpdateRow,
    OwedUpdates,
    TicketOutcomes,
)
from sla_monitor.sources import BadRow, Batch, Source, SourceError
from sla_monitor.store import StateStore
from sla_monitor.tracker import Tracker
from sla_monitor.updates import UpdatePlanner

log = structlog.get_logger("sla_monitor.daemon")

# What a poll may raise when the database is away or misconfigured: handled, never fatal.
POLL_ERRORS: tuple[type[BaseException], ...] = (DatabaseUnavailable, SourceError)


# Outcomes and escalations held during the initial sync before they are recorded.
SYNC_FLUSH = 5000
# How long a capped progress update waits before the store is asked again.
UPDATE_RETRY = timedelta(minutes=5)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Daemon:
    """One source watched by one tracker. ``clock`` is injectable for tests."""

    def __init__(
        self,
        source: Source,
        store: StateStore,
        tracker: Tracker,
        metrics: Metrics,
        poll_interval: float,
        watermark_lag: float = 30.0,
        backfill: float = 0.0,
        clock: Callable[[], datetime] = utcnow,
        heartbeat: Callable[[], None] | None = None,
        heartbeat_interval: float = 1.0,
        escalation_levels: tuple[EscalationLevel, ...] = (),
        ticket_url: str = "",
        on_outbox: Callable[[], None] | None = None,
        updates: UpdatePlanner | None = None,
        reconcile_interval: float = 600.0,
    ) -> None:
        self.source = source
        self.store = store
        self.tracker = tracker
        self.metrics = metrics
        self.poll_interval = poll_interval
        self.watermark_lag = timedelta(seconds=watermark_lag)
        self.backfill = timedelta(seconds=backfill)
        self.clock = clock
        # Called after every cycle and at least every heartbeat_interval: the systemd watchdog.
        self.heartbeat = heartbeat
        self.heartbeat_interval = heartbeat_interval
        self.watermark: datetime | None = None
        self.synced = False
        self.ready = False
        self.last_error: str | None = None
        self._stop = asyncio.Event()
        self._next_poll = 0.0  # time.monotonic() of the next poll; 0 polls at once
        self._failures = 0
        # Tracked tickets are checked against the source's open set this often: a deleted or
        # merged ticket sends no change, and must not stay tracked and escalated forever.
        self.reconcile_interval = reconcile_interval
        self._next_reconcile = 0.0  # time.monotonic(); 0: at the first poll after the sync
        self._resync = False  # read every open ticket again at the next poll (after a reload)
        self._pending: dict[str, TicketOutcomes] = {}
        self.escalation_levels = escalation_levels
        self.ticket_url = ticket_url
        self.on_outbox = on_outbox  # wakes the outbox sender after new rows are committed
        self._escalations_pending: dict[str, list[EscalationRow]] = {}
        # Fingerprint of the active escalation keys last committed per ticket.
        self._escalated: dict[str, int] = {}
        # Owing tickets judged since the last update plan: planned without judging them again.
        self._fresh: dict[str, TicketEvaluation] = {}
        self.updates = updates
        self._updates_pending: list[OwedUpdateRow] = []
        self._updates_queued: dict[str, str] = {}  # ticket -> latest update key in the outbox
        # Tickets whose owed update the store refused (the daily cap): asked again after this.
        self._updates_retry_at: dict[str, datetime] = {}
        # Bad rows already reported, so the re-reads of the watermark lag count each once.
        self._bad: dict[str, str] = {}
        # Set by the served process (not by tests sharing one interpreter): gc.freeze() after
        # the initial sync.
        self.freeze_gc = False
        # Called after every batch of the initial sync with the tickets read so far: a sync of
        # a million tickets takes minutes, and systemd must hear that it advances.
        self.sync_progress: Callable[[int], None] | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    def request_poll(self) -> None:
        """Makes the next cycle poll the source, whatever the interval says."""
        self._next_poll = 0.0

    async def run(self) -> None:
        """Polls until stopped, waking early for due deadlines."""
        while not self._stop.is_set():
            try:
                await self.cycle()
            except _SyncStopped:
                log.info("initial_sync_stopped", tracked=len(self.tracker))
                return
            if self.heartbeat is not None:
                self.heartbeat()
            wait = self._next_poll - time.monotonic()
            due = self.tracker.next_due()
            if due is not None and not self._failures:
                # While the database is away, due timers wait for the next (backed-off) poll,
                # which records what they change: they must not retry the database each.
                wait = min(wait, (due - self.clock()).total_seconds())
            if self.heartbeat is not None:
                wait = min(wait, self.heartbeat_interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=max(0.0, wait))

    async def cycle(self) -> None:
        """Polls when a poll is due, else re-judges due tickets; failures retry with backoff.

        While polls fail, due tickets are judged in memory only (the gauges stay true) and
        the next poll records them: the backoff holds for every database access."""
        try:
            if time.monotonic() >= self._next_poll:
                self._next_poll = time.monotonic() + self.poll_interval
                await self.poll_once()
                if self._failures:
                    log.info("poll_recovered", failed_polls=self._failures)
                self._failures = 0
            elif self._failures:
                self._judge_due()
            else:
                await self.refresh_due()
        except POLL_ERRORS as error:
            self._failures += 1
            # 1 s after the first failure, doubling to 32 s, never longer than the interval.
            delay = backoff(self._failures, 0.5, min(self.poll_interval, 32.0))
            self._next_poll = time.monotonic() + delay
            self._failed(error)

    def _failed(self, error: BaseException) -> None:
        kind = "source" if isinstance(error, SourceError) else "database"
        self.ready = False
        self.last_error = f"{type(error).__name__}: {error}"
        self.metrics.source_up.set(0)
        self.metrics.poll_errors.labels(kind).inc()
        # An outage of minutes is a handful of lines: the first failure, then the 2nd, 4th,
        # 8th ... (the counter and /readyz carry every one).
        if self._failures & (self._failures - 1) == 0:
            log.error("poll_failed", kind=kind, error=self.last_error, failures=self._failures)

    # --- one cycle ------------------------------------------------------------------------

    async def poll_once(self) -> None:
        """One cycle: first a full sync of open tickets, then changes since the watermark."""
        started = time.perf_counter()
        if not self.synced:
            await self._initial_sync()
        elif self._resync:
            self._resync = False
            await self._read_open_tickets()
        assert self.watermark is not None
        # Changes stamped before (now - lag) are taken as committed and seen; the next poll
        # starts there, so a change is re-read for at most `lag` of wall time, however
        # quiet the helpdesk is afterwards. A transaction committing later than that is missed.
        # "now" is the database's clock, the one that stamps the changes: a daemon whose
        # host clock runs ahead would otherwise settle changes not yet committed.
        settled = await self.source.database_now() - self.watermark_lag
        newest = self.watermark
        async for batch in self.source.changed_since(self.watermark):
            self._absorb(batch)
            if batch.newest_change is not None:
                newest = max(newest, batch.newest_change)
        newest = min(newest, max(settled, self.watermark))
        if time.monotonic() >= self._next_reconcile:
            await self._reconcile()
        self._judge_due()
        self._plan_updates()
        await self._flush(newest)
        self.watermark = newest
        elapsed = time.perf_counter() - started
        self.metrics.poll_duration.observe(elapsed)
        self.metrics.last_successful_poll.set(time.time())
        self.metrics.source_up.set(1)
        self.metrics.tracked_tickets.set(len(self.tracker))
        if not self.ready:
            log.info("source_ready", source=self.source.name, tracked=len(self.tracker))
        self.ready = True
        self.last_error = None

    async def refresh_due(self) -> None:
        """Re-judges tickets whose deadline or at-risk instant has come, between polls."""
        self._judge_due()
        self._plan_updates()
        await self._flush(None)

    def _judge_due(self) -> None:
        self._absorb_evaluations(self.tracker.refresh_due(self.clock(), self._judging_failed))

    def reload(self, policies: PolicySet) -> None:
        """Applies new policies to every tracked ticket; outcomes are recorded next cycle.

        Tickets left out as bad rows (an unknown priority, say) may be fine now: every open
        ticket is read again at the next poll (unchanged tracked ones are not judged again)."""
        self.tracker.policies = policies
        self._absorb(Batch(tickets=self.tracker.tickets()), rejudge=True)
        self._bad.clear()
        self._resync = True
        self.request_poll()
        self.metrics.tracked_tickets.set(len(self.tracker))
        log.info("policies_reloaded", tracked=len(self.tracker))

    async def _reconcile(self) -> None:
        """Forgets tracked tickets that left the open set without a change the watermark
        sees (deleted, merged away), and resolves escalations still active in the store for
        tickets no longer tracked (closed or deleted while the daemon was stopped)."""
        self._next_reconcile = time.monotonic() + self.reconcile_interval
        before = self.tracker.ids()  # taken first: a ticket tracked later is not judged here
        open_ids = await self.source.open_ticket_ids()
        gone = sorted(t for t in before - open_ids if t in self.tracker)
        for ticket_id in gone:
            self._leave(ticket_id)
        stale = [
            t
            for t in await self.store.escalated_tickets()
            if t not in self.tracker and t not in self._escalations_pending
        ]
        for ticket_id in stale:
            self._escalations_pending[ticket_id] = []
        if gone or stale:
            self.metrics.tickets_vanished.inc(len(gone))
            log.info(
                "reconciled",
                left_open_set=len(gone),
                escalations_resolved_for=len(stale),
                examples=gone[:5],
            )

    def _leave(self, ticket_id: str) -> None:
        """A tracked ticket leaves without a final evaluation: out of the gauges, and its
        escalations resolve with the next flush."""
        self.tracker.forget(ticket_id)
        self._pending.pop(ticket_id, None)
        self._fresh.pop(ticket_id, None)
        self._escalations_pending[ticket_id] = []

    async def _initial_sync(self) -> None:
        stored = await self.store.load_watermark()
        # On a first start, read changes from `backfill` ago, and the lag before that as always
        # (by the database's clock, which stamps the changes).
        first = await self.source.database_now() - self.backfill - self.watermark_lag
        self.watermark = stored if stored is not None else first
        count = await self._read_open_tickets()
        self.synced = True
        if self.freeze_gc:
            # What the sync leaves is long-lived: hidden from the collector, a full collection
            # no longer walks it (tens of ms each, at the collector's pace, in every cycle).
            gc.collect()
            gc.freeze()
        log.info(
            "initial_sync",
            source=self.source.name,
            open_tickets=count,
            watermark=self.watermark.isoformat(),
            resumed=stored is not None,
        )

    async def _read_open_tickets(self) -> int:
        """Reads and judges every open ticket, recording outcomes as it goes."""
        count = 0
        # A backlog's outcomes are recorded as the sync goes, not held until its end: memory
        # stays flat, alerts flow during a long first sync, and the database records one
        # chunk while the next is judged.
        recording: asyncio.Task[None] | None = None
        try:
            async for batch in self.source.open_tickets():
                self._absorb(batch)
                count += len(batch.tickets)
                if self.sync_progress is not None:
                    self.sync_progress(count)
                if self._stop.is_set():
                    # SIGTERM during a sync of minutes: what was recorded stays recorded; no
                    # watermark is saved, so the next start syncs again.
                    raise _SyncStopped
                if len(self._pending) + len(self._escalations_pending) >= SYNC_FLUSH:
                    if recording is not None:
                        await recording
                    recording = asyncio.create_task(self._flush(None))
        except BaseException:
            if recording is not None:
                await asyncio.wait([recording])  # its outcomes return to the pending ones
                if not recording.cancelled():
                    recording.exception()  # reported by the sync's own error
            raise
        if recording is not None:
            await recording
        await self._flush(None)
        return count

    def _absorb(self, batch: Batch, rejudge: bool = False) -> None:
        """Judges the batch's new and changed tickets (all of them when ``rejudge``)."""
        now = self.clock()
        for bad in batch.bad_rows:
            self._bad_row(bad)
        evaluations = []
        for ticket in batch.tickets:
            if not rejudge and self.tracker.unchanged(ticket):
                continue  # a customer message, an internal note, a re-read of the lag window
            try:
                evaluations.append(self.tracker.update(ticket, now))
            except Exception as error:
                self._judging_failed(ticket.ticket_id, error)
                continue
            self._bad.pop(ticket.ticket_id, None)
        self._absorb_evaluations(evaluations)

    def _judging_failed(self, ticket_id: str, error: Exception) -> None:
        """A ticket the engine refused (TicketError) or failed on is a bad row: that ticket
        is left out and reported, the loop and every other ticket go on."""
        if isinstance(error, TicketError):
            self._bad_row(BadRow(ticket_id, error.reason, error.detail))
            return
        if self._bad.get(ticket_id) != "evaluation_failed":
            log.exception("evaluation_failed", ticket_id=ticket_id, exc_info=error)
        self._bad_row(BadRow(ticket_id, "evaluation_failed", f"{type(error).__name__}: {error}"))

    def _absorb_evaluations(self, evaluations: list[TicketEvaluation]) -> None:
        for evaluation in evaluations:
            outcomes = self.tracker.unrecorded(evaluation)
            if outcomes is not None:
                self._pending[evaluation.ticket_id] = outcomes
            if self.escalation_levels:
                self._escalate(evaluation)
            if self.updates is not None and evaluation.ticket_id in self.tracker.owing:
                self._fresh[evaluation.ticket_id] = evaluation

    def _escalate(self, evaluation: TicketEvaluation) -> None:
        rows = [
            escalation_row(self.source.name, evaluation, escalation, self.ticket_url)
            for escalation in active_escalations(evaluation, self.escalation_levels)
        ]
        if self._escalated.get(evaluation.ticket_id) != _fingerprint(rows):
            self._escalations_pending[evaluation.ticket_id] = rows

    def _plan_updates(self) -> None:
        """Progress updates owed now to customers, for the next flush."""
        if self.updates is None:
            return
        now = self.clock()
        planned = []
        fresh, self._fresh = self._fresh, {}
        for ticket_id in sorted(self.tracker.owing):
            retry_at = self._updates_retry_at.get(ticket_id)
            if retry_at is not None and now < retry_at:
                continue
            queued = self._updates_queued.get(ticket_id)
            if queued is not None and ticket_id not in fresh:
                continue  # judged the same as when its update was queued: the same update
            ticket = self.tracker.ticket(ticket_id)
            if ticket is None:
                continue
            quiet_until = self.updates.quiet_until(ticket, now)
            if quiet_until is not None:
                # Nothing to judge before the customer's quiet hours end: skipped until then.
                self._updates_retry_at[ticket_id] = quiet_until
                continue
            evaluation = fresh.get(ticket_id) or self.tracker.evaluation(ticket_id)
            if evaluation is None:
                continue
            try:
                row = self.updates.plan(self.source.name, evaluation, ticket, now, queued)
            except Exception as error:
                # A template that fails for this ticket only: reported, retried later.
                self._updates_retry_at[ticket_id] = now + UPDATE_RETRY
                self.metrics.customer_updates.labels("failed").inc()
                log.error(
                    "update_planning_failed",
                    ticket_id=ticket_id,
                    error=f"{type(error).__name__}: {error}",
                )
                continue
            if row is not None:
                planned.append(row)
        self._updates_pending = planned

    def _bad_row(self, bad: BadRow) -> None:
        if bad.ticket_id is not None:
            if self._bad.get(bad.ticket_id) == bad.reason:
                return
            self._bad[bad.ticket_id] = bad.reason
            if bad.ticket_id in self.tracker:
                self._leave(bad.ticket_id)
        self.metrics.bad_rows.labels(bad.reason).inc()
        log.warning(
            "bad_row",
            source=self.source.name,
            ticket_id=bad.ticket_id,
            reason=bad.reason,
            detail=bad.detail,
        )

    async def _flush(self, watermark: datetime | None) -> None:
        """Records pending outcomes (and the watermark) in one transaction, then counts them.

        What it records is taken out of the pending state first, so judging may go on while
        the database works; if recording fails it is put back for the next attempt."""
        if (
            not self._pending
            and not self._escalations_pending
            and not self._updates_pending
            and watermark is None
        ):
            return
        taken, self._pending = self._pending, {}
        escalations, self._escalations_pending = self._escalations_pending, {}
        updates, self._updates_pending = self._updates_pending, []
        pending = list(taken.values())
        state = EscalationState(
            tickets=list(escalations),
            active=[row for rows in escalations.values() for row in rows],
        )
        try:
            new = await self.store.record(
                pending,
                watermark,
                state,
                None
                if self.updates is None
                else OwedUpdates(updates, self.updates.max_per_day, self.updates.channel),
            )
        except BaseException:
            # Anything judged meanwhile is newer than what was taken: it wins.
            self._pending = taken | self._pending
            self._escalations_pending = escalations | self._escalations_pending
            self._updates_pending = self._updates_pending or updates
            raise
        inserted = {m.dedup_key for m in new.outbox if m.action == "update"}
        for row in updates:
            if row.idempotency_key in inserted:
                self._updates_queued[row.ticket_id] = row.idempotency_key
                self._updates_retry_at.pop(row.ticket_id, None)
            else:  # capped (or recorded before a restart): ask again later, not every cycle
                self._updates_retry_at[row.ticket_id] = row.owed_at + UPDATE_RETRY
        for memo in (self._updates_queued, self._updates_retry_at):
            for ticket_id in [t for t in memo if t not in self.tracker]:
                del memo[ticket_id]
        for outcomes in pending:
            self.tracker.mark_recorded(outcomes)
        for ticket_id, rows in escalations.items():
            if ticket_id in self.tracker:
                self._escalated[ticket_id] = _fingerprint(rows)
            else:
                self._escalated.pop(ticket_id, None)
        self._count(new)
        if new.outbox:
            log.info("escalations_recorded", outbox=len(new.outbox))
            if self.on_outbox is not None:
                self.on_outbox()

    def _count(self, new: NewlyRecorded) -> None:
        self.metrics.count_recorded(new)
        if not self.synced and new.breaches:
            # A backlog read on a first start: one line per chunk, not one per breach (the
            # breaches table holds each one).
            log.info(
                "sla_breached_in_backlog",
                breaches=len(new.breaches),
                by_clock=dict(Counter(breach.clock for breach in new.breaches)),
            )
            return
        for breach in new.breaches:
            log.info(
                "sla_breached",
                ticket_id=breach.ticket_id,
                clock=breach.clock,
                priority=breach.priority,
                queue=breach.queue,
            )


class _SyncStopped(Exception):
    """The daemon was stopped during its initial sync."""


def _fingerprint(rows: list[EscalationRow]) -> int:
    """A ticket's active escalation keys as one 64-bit hash, not a set of strings."""
    return hash(frozenset(row.dedup_key for row in rows))

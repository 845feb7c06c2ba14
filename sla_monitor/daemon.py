"""The loop: poll the source, judge what changed, hand outcomes to the store, sleep until the
next due instant.

Data flows one way: source -> tracker (engine) -> planners -> state store -> metrics. The
escalation and customer-update planners keep their own memory; the loop only decides when.
A database outage marks the source down and the loop retries with backoff; nothing is counted
twice because the store records every breach and completion once.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import structlog

from sla_monitor.backoff import backoff
from sla_monitor.daemon_options import Hooks, Timing
from sla_monitor.engine import PolicySet
from sla_monitor.errors import DatabaseUnavailable
from sla_monitor.judge import Handoff, Judge
from sla_monitor.records import Recorder
from sla_monitor.sources import Batch, Source, SourceError

log = structlog.get_logger("sla_monitor.daemon")

# What a poll may raise when the database is away or misconfigured: handled, never fatal.
POLL_ERRORS: tuple[type[BaseException], ...] = (DatabaseUnavailable, SourceError)

# Outcomes and escalations held during the initial sync before they are recorded.
SYNC_FLUSH = 5000
# Tickets judged again per recording by a takeover: small, so the loop yields often enough
# for leadership to prove its lock (a proof is trusted for 3 s).
TAKEOVER_CHUNK = 1000
# A takeover judges the rest of the tracker again in slices of about this many seconds (at
# least a chunk), one per cycle, between polls: at 1 M tickets it takes tens of minutes, and
# polls, due deadlines and pages go on meanwhile.
REJUDGE_SLICE = 0.25
# The tickets of the latest discarded recordings a takeover judges first (newest first), so
# what just breached is recorded, and paged, before the rest of the tracker.
RECENT = 10_000


def utcnow() -> datetime:
    return datetime.now(UTC)


class Daemon:
    """One source, judged by ``judge`` (which holds the tracker, the metrics and the
    planners), recorded in ``store``. ``clock`` is injectable for tests."""

    def __init__(
        self,
        source: Source,
        store: Recorder,
        judge: Judge,
        timing: Timing | None = None,
        hooks: Hooks | None = None,
        clock: Callable[[], datetime] = utcnow,
        leading: Callable[[], bool] | None = None,
    ) -> None:
        """``leading()``: False while this replica is a standby (see sla_monitor.leadership),
        which judges everything and records nothing; None: always the leader."""
        self.source = source
        self.store = store
        self.judge = judge
        self.tracker = judge.tracker
        self.metrics = judge.metrics
        self.timing = timing or Timing()
        self.hooks = hooks or Hooks()
        self.clock = clock
        self.watermark: datetime | None = None
        self.ready = False
        self.last_error: str | None = None
        self._stop = asyncio.Event()
        self._next_poll = 0.0  # time.monotonic() of the next poll; 0 polls at once
        self._next_reconcile = 0.0  # 0: at the first poll after the sync
        self._failures = 0
        self._resync = False  # read every open ticket again at the next poll (after a reload)
        self.leading = leading
        # Record the full state at the next poll that leads (a new leader, or judgments
        # discarded: see _flush).
        self._takeover = False
        self._recent: dict[str, None] = {}  # tickets of discarded recordings, oldest first
        self._rejudge: list[str] = []  # what a takeover has still to judge again, from
        self._rejudged = 0  # this index on
        self._started_from: datetime | None = None  # the watermark the first sync began at

    def stop(self) -> None:
        self._stop.set()

    def request_poll(self) -> None:
        """Makes the next cycle poll the source, whatever the interval says."""
        self._next_poll = 0.0

    @property
    def synced(self) -> bool:
        """The first sync is done: every open ticket has been read."""
        return self.tracker.complete

    @property
    def role(self) -> str:
        return "leader" if self.leading is None or self.leading() else "standby"

    def take_over(self) -> None:
        """This replica now leads: its next poll records the full state (see _take_over),
        also when it discarded nothing (another leader may have changed the store)."""
        self._takeover = True
        self.request_poll()

    def down(self, reason: str) -> None:
        """The daemon cannot do its work (database away, a task crashed): not ready."""
        self.ready = False
        self.last_error = reason
        self.metrics.source_up.set(0)

    def status(self) -> str:
        """One line for systemd's status: what the daemon is doing."""
        if self.ready:
            return f"tracking {len(self.tracker)} open tickets"
        return f"source unavailable: {self.last_error or 'starting'}"

    async def run(self) -> None:
        """Polls until stopped, waking early for due deadlines."""
        while not self._stop.is_set():
            try:
                await self.cycle()
            except _SyncStopped:
                log.info("initial_sync_stopped", tracked=len(self.tracker))
                return
            if self.hooks.heartbeat is not None:
                self.hooks.heartbeat(self.ready, self.status())
            wait = self._next_poll - time.monotonic()
            due = self.tracker.next_due()
            if due is not None and not self._failures:
                # While the database is away, due timers wait for the next (backed-off) poll,
                # which records what they change: they must not retry the database each.
                wait = min(wait, (due - self.clock()).total_seconds())
            if self.hooks.heartbeat is not None:
                wait = min(wait, self.hooks.heartbeat_interval)
            if self._rejudge and not self._failures:
                wait = 0.0  # a takeover's next slice (the loop is given back meanwhile)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=max(0.0, wait))

    async def cycle(self) -> None:
        """Polls when a poll is due, else re-judges due tickets; failures retry with backoff.

        While polls fail, due tickets are judged in memory only (the gauges stay true) and
        the next poll records them: the backoff holds for every database access."""
        try:
            # A leader with a takeover pending polls at once (not while backing off).
            takeover = self._takeover and not self._failures and self.role == "leader"
            if time.monotonic() >= self._next_poll or takeover:
                self._next_poll = time.monotonic() + self.timing.poll_interval
                await self.poll_once()
                if self._failures:
                    log.info("poll_recovered", failed_polls=self._failures)
                self._failures = 0
            elif self._failures:
                self.judge.judge_due(self.clock())
            else:
                await self.refresh_due()
        except POLL_ERRORS as error:
            self._failures += 1
            # 1 s after the first failure, doubling to 32 s, never longer than the interval.
            delay = backoff(self._failures, 0.5, min(self.timing.poll_interval, 32.0))
            self._next_poll = time.monotonic() + delay
            kind = "source" if isinstance(error, SourceError) else "database"
            # DatabaseUnavailable's text names the driver's error type already.
            self.down(f"{type(error).__name__}: {error}" if kind == "source" else str(error))
            self.metrics.poll_errors.labels(kind).inc()
            # An outage of minutes is a handful of lines: the 1st, 2nd, 4th, 8th ... failure
            # (the counter and /readyz carry every one).
            if self._failures & (self._failures - 1) == 0:
                log.error("poll_failed", kind=kind, error=self.last_error, failures=self._failures)

    async def poll_once(self) -> None:
        """One cycle: first a full sync of open tickets, then changes since the watermark."""
        started = time.perf_counter()
        if not self.synced:
            await self._initial_sync()
        elif self._resync:
            self._resync = False
            await self._read_open_tickets()
        if self._takeover and self.role == "leader":
            await self._take_over()
        assert self.watermark is not None
        # Changes stamped before (now - lag) are taken as committed and seen; the next poll
        # starts there, so a change is re-read for at most `lag` of wall time, however
        # quiet the helpdesk is afterwards. A transaction committing later than that is missed.
        # "now" is the database's clock, the one that stamps the changes: a daemon whose
        # host clock runs ahead would otherwise settle changes not yet committed.
        settled = await self.source.database_now() - timedelta(seconds=self.timing.watermark_lag)
        newest = self.watermark
        async for batch in self.source.changed_since(self.watermark):
            self.judge.absorb(batch, self.clock())
            if batch.newest_change is not None:
                newest = max(newest, batch.newest_change)
        newest = min(newest, max(settled, self.watermark))
        if time.monotonic() >= self._next_reconcile:
            await self._reconcile()
        self.judge.judge_due(self.clock())
        self.judge.plan_updates(self.clock())
        # A first start's watermark (which ends its backlog, with the summary) waits until a
        # takeover has judged every ticket again: the rest of the backlog is not paged.
        hold = bool(self._rejudge) and self.judge.escalations.in_backlog
        await self._flush(None if hold else newest)
        self.watermark = newest
        await self._rejudge_some()
        self.metrics.polled(time.perf_counter() - started, len(self.tracker))
        if not self.ready:
            log.info("source_ready", source=self.source.name, tracked=len(self.tracker))
        self.ready = True
        self.last_error = None

    async def refresh_due(self) -> None:
        """Re-judges tickets whose deadline or at-risk instant has come, between polls, and
        a slice of a takeover's tickets."""
        self.judge.judge_due(self.clock())
        self.judge.plan_updates(self.clock())
        await self._flush(None)
        await self._rejudge_some()

    def reload(self, policies: PolicySet) -> None:
        """Applies new policies to every tracked ticket; outcomes are recorded next cycle.

        Tickets left out as bad rows (an unknown priority, say) may be fine now: every open
        ticket is read again at the next poll (unchanged tracked ones are not judged again)."""
        self.judge.reload(policies, self.clock())
        self._resync = True
        self.request_poll()
        self.metrics.tracked_tickets.set(len(self.tracker))
        log.info("policies_reloaded", tracked=len(self.tracker))

    async def _take_over(self) -> None:
        """A standby became the leader: what it judged was discarded, and the old leader may
        have died before recording all of it. Every tracked ticket is judged again and its
        whole state recorded (breaches, completions, escalations and updates are keyed in the
        store, so what was recorded already is neither recorded nor sent again), and changes
        are read again from the stored watermark (tickets that closed while this replica was
        a standby are no longer tracked: their completions come from that re-read). A takeover
        is a first start only if no leader ever recorded a watermark."""
        # Until this runs, nothing is recorded (see _flush): a handoff judged as a standby
        # (a first start's backlog, say) must not be recorded as it was judged.
        self._takeover = False
        try:
            stored = await self.store.load_watermark()
            planner = self.judge.escalations
            assert self.watermark is not None
            if stored is not None:
                planner.end_backlog()
                self.watermark = min(self.watermark, stored)
            else:
                if not planner.in_backlog:
                    planner.begin_backlog(self.clock())
                self.watermark = min(self.watermark, self._started_from or self.watermark)
            planner.forget_recorded()  # what the store holds may have changed meanwhile
            # The re-read below must return the tickets this replica read as a standby too:
            # one that closed meanwhile is no longer tracked, and only the re-read records it.
            self.source.forget_reads()
            self._remember(self.judge.take())  # judged as a standby: judged again below
            first = [t for t in reversed(self._recent) if t in self.tracker]
            self._recent.clear()
            chosen = set(first)
            self._rejudge = first + [t for t in self.tracker.ids() if t not in chosen]
            self._rejudged = 0
            # What just breached first (the latest discarded recordings), now; the rest a
            # slice per cycle (_rejudge_some) while polls and due deadlines go on: judging a
            # whole tracker of 1 M tickets here held every page back for tens of minutes.
            await self._rejudge_some(until=len(first))
        except BaseException:
            self._takeover = True
            self._rejudge = []
            raise
        self._next_reconcile = 0.0  # escalations of tickets closed meanwhile resolve now
        log.info(
            "took_over",
            tracked=len(self.tracker),
            to_judge_again=len(self._rejudge) - self._rejudged,
            watermark=self.watermark.isoformat(),
            first_start=stored is None,
        )

    async def _rejudge_some(self, until: int | None = None) -> None:
        """Judges the next tickets of a takeover again and records them, a chunk at a time:
        up to index ``until``, else for about REJUDGE_SLICE seconds (at least one chunk)."""
        began = time.monotonic()
        ids = self._rejudge
        end = len(ids) if until is None else min(until, len(ids))
        while self._rejudged < end:
            if self.role != "leader" or self._takeover:
                # The lead was lost (or a recording discarded): judging the rest would be
                # discarded too. The next poll that leads takes over again, from the start.
                self._takeover = True
                self._rejudge, self._rejudged = [], 0
                return
            # Unpacked a chunk at a time: all of them at once held the loop for many
            # seconds at 1 M tickets, past the lock's lease (bench_failover).
            chunk = ids[self._rejudged : self._rejudged + TAKEOVER_CHUNK]
            self._rejudged += len(chunk)
            tickets = [t for i in chunk if (t := self.tracker.ticket(i)) is not None]
            self.judge.absorb(Batch(tickets=tickets), self.clock(), rejudge=True)
            await self._flush(None)
            # The lock's proof runs between chunks even when _flush awaited nothing (a
            # discarded recording): without it the lease ran out during a long takeover.
            await asyncio.sleep(0)
            if until is None and time.monotonic() - began >= REJUDGE_SLICE:
                break
        if ids and self._rejudged >= len(ids):
            log.info(
                "takeover_complete",
                judged_again=len(ids),
                # False: a recording was discarded meanwhile: the next poll takes over again.
                complete=not self._takeover,
            )
            self._rejudge, self._rejudged = [], 0

    def _remember(self, handoff: Handoff) -> None:
        """Notes the tickets of a discarded recording (the newest RECENT are kept)."""
        ids = [*handoff.outcomes, *handoff.escalations]
        if handoff.updates is not None:
            ids += [row.ticket_id for row in handoff.updates.rows]
        recent = self._recent
        for ticket_id in ids:
            recent.pop(ticket_id, None)
            recent[ticket_id] = None
        while len(recent) > RECENT:
            del recent[next(iter(recent))]

    async def _reconcile(self) -> None:
        """Forgets tracked tickets that left the open set without a change the watermark
        sees (deleted, merged away), and resolves escalations still active in the store for
        tickets no longer tracked (closed or deleted while the daemon was stopped)."""
        self._next_reconcile = time.monotonic() + self.timing.reconcile_interval
        before = self.tracker.ids()  # taken first: a ticket tracked later is not judged here
        gone = self.judge.drop_missing(before, await self.source.open_ticket_ids())
        stale = []
        if self.role == "leader":  # a standby records nothing: the leader resolves them
            stale = self.judge.resolve_untracked(await self.store.escalated_tickets())
        if gone or stale:
            self.metrics.tickets_vanished.inc(len(gone))
            log.info(
                "reconciled",
                left_open_set=len(gone),
                escalations_resolved_for=len(stale),
                examples=gone[:5],
            )

    async def _initial_sync(self) -> None:
        stored = await self.store.load_watermark()
        # On a first start, read changes from `backfill` ago, and the lag before that as always
        # (by the database's clock, which stamps the changes).
        first = await self.source.database_now() - timedelta(
            seconds=self.timing.backfill + self.timing.watermark_lag
        )
        self.watermark = self._started_from = stored if stored is not None else first
        if stored is None:
            # A first start: escalations already due are its backlog (see [escalation]
            # backlog), until the first watermark is recorded.
            self.judge.escalations.begin_backlog(self.clock())
        collecting = gc.isenabled()
        if self.hooks.freeze_gc:
            # No cyclic collection during the sync: it allocates millions of objects, almost
            # none in cycles, and each full collection would walk every one made so far.
            gc.freeze()
            gc.disable()
        try:
            count = await self._read_open_tickets()
        finally:
            if self.hooks.freeze_gc:
                # What the sync leaves is long-lived: hidden from the collector, a full
                # collection no longer walks it (tens of ms each, at the collector's pace).
                # No gc.collect() first: a sync makes no cyclic garbage to free (0 objects
                # found unreachable after filling a tracker), and that one full pass held the
                # loop ~1.1 us a ticket, seconds at 1 M open tickets under load: longer than
                # a leader's lease (bench_failover at 1 M saw the leader step down there).
                gc.freeze()
                if collecting:
                    gc.enable()
        self.tracker.complete = True
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
                self.judge.absorb(batch, self.clock())
                count += len(batch.tickets)
                if self.hooks.sync_progress is not None:
                    self.hooks.sync_progress(count)
                if self._stop.is_set():
                    # SIGTERM during a sync of minutes: what was recorded stays recorded; no
                    # watermark is saved, so the next start syncs again.
                    raise _SyncStopped
                if len(self.judge) >= SYNC_FLUSH:
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

    async def _flush(self, watermark: datetime | None) -> None:
        """Records what judging handed on (and the watermark) in one transaction.

        What it records is taken out first, so judging may go on while the database works;
        if recording fails it is put back for the next attempt."""
        handoff = self.judge.take()
        if self.role != "leader" or self._takeover:
            # A standby records nothing: the leader does. What is discarded here (by a
            # standby, or a leader whose lock was not proven for a moment) is judged again
            # by the takeover of the next poll that leads. Nothing kept here grows.
            self._takeover = True
            self._remember(handoff)
            return
        if not handoff and watermark is None:
            return
        escalations = handoff.escalation_state
        planner = self.judge.escalations
        if watermark is not None and (summary := planner.backlog_summary()) is not None:
            # With the first watermark: a crash before it leaves a first start, summarized
            # again (with every backlog escalation recorded so far) by the next start.
            escalations = replace(escalations, summary=summary)
        try:
            new = await self.store.record(
                list(handoff.outcomes.values()), watermark, escalations, handoff.updates
            )
        except BaseException:
            self.judge.put_back(handoff)
            raise
        self.judge.recorded(handoff, new, backlog=not self.synced)
        if watermark is not None:
            planner.end_backlog()
        if new.outbox:
            log.info("escalations_recorded", outbox=len(new.outbox))
            if self.hooks.on_outbox is not None:
                self.hooks.on_outbox()


class _SyncStopped(Exception):
    """The daemon was stopped during its initial sync."""

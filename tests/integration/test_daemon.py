"""The daemon against a real PostgreSQL holding the reference helpdesk schema."""

from __future__ import annotations

import asyncio
import gc
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import structlog

from sla_monitor.app import open_pools
from sla_monitor.config import Settings
from sla_monitor.daemon_options import Hooks
from sla_monitor.errors import DatabaseUnavailable
from sla_monitor.store import migration_versions
from tests.integration.helpdesk import FakeClock, at, completed, make_daemon, open_gauge, sample

pytestmark = pytest.mark.integration


def breaches(daemon, clock: str, priority: str = "normal", queue: str = "support") -> float:
    return sample(daemon, "sla_monitor_breaches_total", clock=clock, priority=priority, queue=queue)


async def test_migrations_apply_once(pool: asyncpg.Pool) -> None:
    daemon = make_daemon(pool, FakeClock())
    assert await daemon.store.migrate() == migration_versions() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert await daemon.store.migrate() == []
    async with pool.acquire() as conn:
        tables = {
            r["table_name"]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'sla_monitor' AND table_type = 'BASE TABLE'"
            )
        }
    assert tables == {
        "schema_migrations",
        "watermarks",
        "breaches",
        "completions",
        "escalations",
        "outbox",
        "customer_updates",
        "ledger",
    }


async def test_open_tickets_are_gauged_by_clock_and_state(pool, helpdesk) -> None:
    await helpdesk.ticket(created=0)  # unanswered, 50 min old at now: at risk
    answered = await helpdesk.ticket(created=0, priority="high")
    await helpdesk.reply(answered, 10)
    await helpdesk.ticket(created=-120, queue="billing")  # 170 min: breached
    clock = FakeClock(50)
    daemon = make_daemon(pool, clock)
    await daemon.store.migrate()
    await daemon.poll_once()

    assert open_gauge(daemon, "first_response", "at_risk") == 1
    assert open_gauge(daemon, "first_response", "breached", queue="billing") == 1
    assert open_gauge(daemon, "first_response", "ok", priority="high") == 0  # stopped: met
    assert open_gauge(daemon, "resolution", "ok", priority="high") == 1
    assert completed(daemon, "first_response", priority="high") == 1
    assert (
        sample(daemon, "sla_monitor_first_response_seconds_sum", priority="high", queue="support")
        == 600
    )
    assert breaches(daemon, "first_response", queue="billing") == 1
    assert sample(daemon, "sla_monitor_tracked_tickets") == 3
    assert sample(daemon, "sla_monitor_source_up") == 1
    assert daemon.ready


async def test_time_alone_moves_a_ticket_to_breached(pool, helpdesk) -> None:
    await helpdesk.ticket(created=0)
    clock = FakeClock(10)
    daemon = make_daemon(pool, clock)
    await daemon.store.migrate()
    await daemon.poll_once()
    assert open_gauge(daemon, "first_response", "ok") == 1
    assert daemon.tracker.next_due() is not None
    clock.set(61)
    await daemon.refresh_due()
    assert open_gauge(daemon, "first_response", "ok") == 0
    assert open_gauge(daemon, "first_response", "breached") == 1
    assert breaches(daemon, "first_response") == 1


async def test_changes_are_picked_up_incrementally(pool, helpdesk) -> None:
    ticket = await helpdesk.ticket(created=0)
    clock = FakeClock(20)
    daemon = make_daemon(pool, clock)
    await daemon.store.migrate()
    await daemon.poll_once()
    await helpdesk.reply(ticket, 30)
    clock.set(40)
    await daemon.poll_once()
    assert open_gauge(daemon, "first_response", "ok") == 0
    assert completed(daemon, "first_response") == 1
    await helpdesk.set_status(ticket, 100, "resolved")
    clock.set(120)
    await daemon.poll_once()
    assert sample(daemon, "sla_monitor_tracked_tickets") == 0
    assert completed(daemon, "resolution") == 1
    assert (
        sample(daemon, "sla_monitor_resolution_seconds_sum", priority="normal", queue="support")
        == 100 * 60
    )


async def test_restart_neither_forgets_nor_recounts(pool, helpdesk) -> None:
    done = await helpdesk.ticket(created=0)
    await helpdesk.reply(done, 5)
    await helpdesk.set_status(done, 30, "resolved")
    await helpdesk.ticket(created=0)
    clock = FakeClock(90)
    first = make_daemon(pool, clock)
    await first.store.migrate()
    await first.poll_once()
    await first.poll_once()
    assert completed(first, "resolution") == 1
    assert breaches(first, "first_response") == 1
    watermark = first.watermark

    second = make_daemon(pool, clock)
    await second.poll_once()
    # Resumed from the stored watermark (it only moves on, by the database's clock).
    assert second.watermark is not None and watermark is not None
    assert second.watermark >= watermark
    assert completed(second, "resolution") == 0
    assert breaches(second, "first_response") == 0
    assert open_gauge(second, "first_response", "breached") == 1  # still tracked
    async with pool.acquire() as conn:
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM sla_monitor.completions WHERE clock = 'resolution'"
            )
            == 1
        )
        assert await conn.fetchval("SELECT count(*) FROM sla_monitor.breaches") == 1


async def test_malformed_rows_are_counted_and_skipped(pool, helpdesk) -> None:
    good = await helpdesk.ticket(created=0)
    unknown_priority = await helpdesk.ticket(created=0, priority="p0")
    unknown_status = await helpdesk.ticket(created=0, status="limbo")
    early_reply = await helpdesk.ticket(created=0)
    await helpdesk.reply(early_reply, -10)
    # A helpdesk whose creation times have no time zone, and one with NULL creation times.
    naive = make_daemon(pool, FakeClock(20), _with_created_at("created_at::timestamp"))
    await naive.store.migrate()
    await naive.poll_once()
    assert sample(naive, "sla_monitor_bad_rows_total", reason="naive_timestamp") == 4
    assert sample(naive, "sla_monitor_tracked_tickets") == 0
    nulls = make_daemon(
        pool,
        FakeClock(20),
        _with_created_at(f"CASE WHEN id = {good} THEN NULL ELSE created_at END"),
    )
    await nulls.poll_once()
    assert sample(nulls, "sla_monitor_bad_rows_total", reason="null_timestamp") == 1
    assert good not in nulls.tracker

    default = make_daemon(pool, FakeClock(20))
    await default.poll_once()
    assert sample(default, "sla_monitor_bad_rows_total", reason="unknown_priority") == 1
    assert sample(default, "sla_monitor_bad_rows_total", reason="unknown_status") == 1
    assert sample(default, "sla_monitor_bad_rows_total", reason="event_before_creation") == 1
    assert sample(default, "sla_monitor_tracked_tickets") == 1
    assert good in default.tracker
    assert {unknown_priority, unknown_status, early_reply} & {
        e.ticket_id for e in default.tracker.evaluations()
    } == set()


def _with_created_at(expression: str) -> Settings:
    columns = (
        f"SELECT id::text AS ticket_id, {expression} AS created_at, updated_at, queue,"
        " status, priority FROM helpdesk.tickets"
    )
    return Settings(
        source={
            "changed_tickets_query": columns + " WHERE updated_at > $1",
            "open_tickets_query": columns + " WHERE status <> ALL($1::text[])",
        }
    )


async def test_a_query_missing_columns_is_a_source_error_not_a_crash(pool, helpdesk) -> None:
    await helpdesk.ticket(created=0)
    settings = Settings(
        source={
            "open_tickets_query": "SELECT id AS ticket_id FROM helpdesk.tickets"
            " WHERE $1::text[] IS NOT NULL"
        }
    )
    daemon = make_daemon(pool, FakeClock(5), settings)
    await daemon.store.migrate()
    from sla_monitor.sources import SourceError

    with pytest.raises(SourceError, match="open_tickets_query must return the columns"):
        await daemon.poll_once()


async def test_the_watermark_lag_runs_on_the_databases_clock(pool, helpdesk) -> None:
    # The daemon's host clock runs 60 s ahead of the database that stamps the changes.
    clock = FakeClock()
    clock.now = datetime.now(UTC) + timedelta(seconds=60)
    daemon = make_daemon(pool, clock)
    await daemon.store.migrate()
    insert = (
        "INSERT INTO helpdesk.tickets (created_at, updated_at) "
        "VALUES ($1, clock_timestamp() - $2::interval) RETURNING id::text, updated_at"
    )
    # A change older than the lag is settled: the watermark is that change.
    _, settled = await helpdesk.conn.fetchrow(insert, at(0), timedelta(minutes=2))
    await daemon.poll_once()
    assert daemon.watermark == settled
    # A change inside the lag is read again at the next poll, not settled by the daemon's
    # clock: a transaction that commits late, stamped 1 s before the database's now.
    await helpdesk.ticket(created=0)
    await daemon.poll_once()
    database_now = await helpdesk.conn.fetchval("SELECT clock_timestamp()")
    assert daemon.watermark <= database_now - timedelta(seconds=daemon.timing.watermark_lag)
    late, _ = await helpdesk.conn.fetchrow(insert, at(0), timedelta(seconds=1))
    await daemon.poll_once()
    assert late in daemon.tracker
    async with pool.acquire() as conn:
        stored = await conn.fetchval("SELECT changed_at FROM sla_monitor.watermarks")
    assert stored == daemon.watermark


async def test_a_served_daemon_hides_what_its_sync_keeps_from_the_collector(pool, helpdesk) -> None:
    await helpdesk.ticket(created=0)
    daemon = make_daemon(pool, FakeClock(10))
    daemon.hooks = Hooks(freeze_gc=True)  # what `sla-monitor run` sets
    await daemon.store.migrate()
    gc.unfreeze()
    try:
        await daemon.poll_once()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
    plain = make_daemon(pool, FakeClock(10))
    await plain.poll_once()
    assert gc.get_freeze_count() == 0


async def test_a_change_no_clock_reads_is_not_judged_again(pool, helpdesk) -> None:
    ticket = await helpdesk.ticket(created=0)
    clock = FakeClock(20)
    daemon = make_daemon(pool, clock)
    await daemon.store.migrate()
    await daemon.poll_once()
    await helpdesk.event(ticket, 25, "internal_note")
    clock.set(30)
    await daemon.poll_once()
    judged = daemon.tracker.evaluation(ticket)
    assert judged is not None
    assert judged.evaluated_at == at(20)  # the note changed no clock (a customer message may)
    await helpdesk.reply(ticket, 35)
    clock.set(40)
    await daemon.poll_once()
    judged = daemon.tracker.evaluation(ticket)
    assert judged is not None
    assert judged.evaluated_at == at(40)
    assert completed(daemon, "first_response") == 1


async def test_a_backlog_is_recorded_in_chunks_while_it_is_judged(
    pool, helpdesk, monkeypatch
) -> None:
    monkeypatch.setattr("sla_monitor.daemon.SYNC_FLUSH", 3)
    for index in range(10):
        await helpdesk.ticket(created=-300 - index)  # breached: first response, update
    daemon = make_daemon(pool, FakeClock(0))
    daemon.source._batch_size = 2  # five batches, three chunks recorded while judging
    await daemon.store.migrate()
    with structlog.testing.capture_logs() as logs:
        await daemon.poll_once()
    backlog = [line for line in logs if line["event"] == "sla_breached_in_backlog"]
    assert sum(line["breaches"] for line in backlog) == 20  # first response and update
    assert len(backlog) > 1
    assert not [line for line in logs if line["event"] == "sla_breached"]
    assert await pool.fetchval("SELECT count(*) FROM sla_monitor.breaches") == 20
    assert breaches(daemon, "first_response") == 10
    late = await helpdesk.ticket(created=-100)
    daemon.clock = FakeClock(30)
    with structlog.testing.capture_logs() as logs:
        await daemon.poll_once()
    assert {line["ticket_id"] for line in logs if line["event"] == "sla_breached"} == {late}


async def test_outcomes_a_failed_recording_took_are_recorded_next_time(
    pool, helpdesk, monkeypatch
) -> None:
    monkeypatch.setattr("sla_monitor.daemon.SYNC_FLUSH", 2)
    for index in range(6):
        await helpdesk.ticket(created=-300 - index)
    daemon = make_daemon(pool, FakeClock(0))
    daemon.source._batch_size = 2
    await daemon.store.migrate()
    record = daemon.store.record
    calls = 0

    async def failing_second(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == 2:
            raise DatabaseUnavailable(OSError("connection reset"))
        return await record(*args, **kwargs)

    monkeypatch.setattr(daemon.store, "record", failing_second)
    await daemon.cycle()  # the sync fails midway: source down, retried
    assert sample(daemon, "sla_monitor_source_up") == 0
    daemon._next_poll = 0.0
    await daemon.cycle()
    assert daemon.ready
    assert await pool.fetchval("SELECT count(*) FROM sla_monitor.breaches") == 12
    assert breaches(daemon, "first_response") == 6


async def test_malformed_events_make_their_ticket_a_bad_row(pool, helpdesk) -> None:
    fine = await helpdesk.ticket(created=0)
    await helpdesk.reply(fine, 5)
    odd_kind = await helpdesk.ticket(created=0)
    await helpdesk.event(odd_kind, 5, "internal_note")
    timeless = await helpdesk.ticket(created=0)
    await helpdesk.event(timeless, 5, "customer_message")
    events = (
        "SELECT ticket_id::text AS ticket_id,"
        " CASE WHEN kind = 'customer_message' THEN NULL ELSE created_at END AS at,"
        " CASE WHEN kind = 'internal_note' THEN 'memo' ELSE kind END AS kind,"
        " new_value AS value, old_value AS previous_value FROM helpdesk.ticket_events"
        " WHERE ticket_id = ANY($1::text[]::bigint[]) ORDER BY ticket_id, created_at, id"
    )
    daemon = make_daemon(pool, FakeClock(20), Settings(source={"events_query": events}))
    await daemon.store.migrate()
    await daemon.poll_once()
    assert sample(daemon, "sla_monitor_bad_rows_total", reason="unknown_event_kind") == 1
    assert sample(daemon, "sla_monitor_bad_rows_total", reason="null_timestamp") == 1
    assert fine in daemon.tracker
    assert odd_kind not in daemon.tracker
    assert timeless not in daemon.tracker


async def test_the_served_pools_plan_each_execution(database_dsn) -> None:
    # A generic plan cached while the daemon's tables were empty made a large first sync
    # quadratic; the pools the daemon runs on never cache one.
    settings = Settings(database={"dsn": database_dsn})
    async with open_pools(settings) as (store_pool, source_pool):
        assert await store_pool.fetchval("SHOW plan_cache_mode") == "force_custom_plan"
        assert await source_pool.fetchval("SHOW plan_cache_mode") == "force_custom_plan"


async def test_a_stop_during_the_first_sync_ends_it_and_saves_no_watermark(pool, helpdesk) -> None:
    for _ in range(5):
        await helpdesk.ticket(created=-10)
    daemon = make_daemon(pool, FakeClock(0))
    daemon.source._batch_size = 1
    await daemon.store.migrate()
    daemon.hooks = Hooks(sync_progress=lambda count: daemon.stop() if count == 2 else None)
    await asyncio.wait_for(daemon.run(), timeout=10)
    assert not daemon.synced
    assert len(daemon.tracker) == 2  # read before the stop; the rest never read
    assert await daemon.store.load_watermark() is None  # the next start syncs again


async def test_events_are_judged_in_time_order_whatever_the_query_order(pool, helpdesk) -> None:
    ticket = await helpdesk.ticket(created=0)
    await helpdesk.set_status(ticket, 5, "pending")
    await helpdesk.set_status(ticket, 10, "open")
    await helpdesk.reply(ticket, 40)
    # Newest first: without sorting, the ticket looked created "pending" and still paused.
    events = (
        "SELECT ticket_id::text AS ticket_id, created_at AS at, kind, new_value AS value,"
        " old_value AS previous_value FROM helpdesk.ticket_events"
        " WHERE ticket_id = ANY($1::text[]::bigint[]) ORDER BY created_at DESC, id DESC"
    )
    daemon = make_daemon(pool, FakeClock(50), Settings(source={"events_query": events}))
    await daemon.store.migrate()
    await daemon.poll_once()
    assert open_gauge(daemon, "resolution", "ok") == 1
    assert open_gauge(daemon, "resolution", "paused") == 0
    assert completed(daemon, "first_response") == 1
    # 5 minutes open, 5 paused, 30 open until the reply.
    assert (
        sample(daemon, "sla_monitor_first_response_seconds_sum", priority="normal", queue="support")
        == 35 * 60
    )


async def test_a_takeover_records_a_ticket_that_closed_while_it_was_a_standby(
    pool, helpdesk
) -> None:
    """The SQL source skips lag re-reads of tickets it read already; a takeover must not: the
    ticket resolved while this replica was a standby is no longer tracked, and only the
    takeover's re-read of the changes records its completions."""
    ticket = await helpdesk.ticket(0)
    clock = FakeClock(10)
    leads = [True]
    daemon = make_daemon(pool, clock)
    daemon.leading = lambda: leads[0]
    await daemon.store.migrate()
    await daemon.poll_once()
    leads[0] = False  # another replica leads, then dies before recording what follows
    await helpdesk.reply(ticket, 20)
    await helpdesk.set_status(ticket, 30, "resolved")
    clock.set(31)
    await daemon.poll_once()
    assert ticket not in daemon.tracker
    async with pool.acquire() as conn:
        query = "SELECT clock FROM sla_monitor.completions WHERE ticket_id = $1"
        assert await conn.fetch(query, ticket) == []
        leads[0] = True
        daemon.take_over()
        clock.set(32)
        await daemon.poll_once()
        clocks = {row["clock"] for row in await conn.fetch(query, ticket)}
    assert {"first_response", "resolution"} <= clocks

"""What the SQL source asks the database: lag re-reads that fetch no events for unchanged
tickets, an events query the index serves in order, and a first sync without cyclic garbage
collection. Queries are counted on a real PostgreSQL with asyncpg's query logger."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from sla_monitor.config import Settings
from sla_monitor.daemon_options import Hooks
from sla_monitor.sources.sql import SqlSource
from tests.integration.helpdesk import FakeClock, Helpdesk, make_daemon

pytestmark = pytest.mark.integration
EPOCH_START = datetime(1970, 1, 1, tzinfo=UTC)


@pytest.fixture
async def logged(database_dsn: str) -> AsyncIterator[tuple[asyncpg.Pool, list[str]]]:
    """A pool whose every query's text is appended to the list."""
    queries: list[str] = []

    async def init(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(lambda logged: queries.append(logged.query))

    pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=2, init=init)
    try:
        yield pool, queries
    finally:
        await pool.close()


def source_on(pool: asyncpg.Pool) -> SqlSource:
    settings = Settings()
    return SqlSource(
        pool,
        "helpdesk",
        settings.source.changed_tickets_query,
        settings.source.open_tickets_query,
        settings.source.events_query,
        settings.statuses.resolved,
        initial_status="new",
    )


async def changed(source: SqlSource) -> tuple[list[str], list[int], object]:
    """The ids read since the epoch, the events of each, and the newest change."""
    ids, counts, newest = [], [], None
    async for batch in source.changed_since(EPOCH_START):
        ids += [t.ticket_id for t in batch.tickets]
        counts += [len(t.events) for t in batch.tickets]
        newest = batch.newest_change or newest
    return ids, counts, newest


def events_fetched(queries: list[str]) -> int:
    settings = Settings()
    return sum(query == settings.source.events_query for query in queries)


async def test_a_lag_re_read_of_an_unchanged_ticket_fetches_no_events(logged, pool) -> None:
    logged_pool, queries = logged
    async with pool.acquire() as conn:
        helpdesk = await Helpdesk.create(conn)
        first = await helpdesk.ticket(created=0)
        await helpdesk.reply(first, 5)
        second = await helpdesk.ticket(created=1)
        source = source_on(logged_pool)

        ids, counts, newest = await changed(source)
        assert sorted(ids) == sorted([first, second]) and sorted(counts) == [0, 1]
        assert events_fetched(queries) == 1

        queries.clear()
        again, _, newest_again = await changed(source)  # the lag window read again
        assert again == []
        assert newest_again == newest  # the watermark still moves over them
        assert events_fetched(queries) == 0

        await helpdesk.reply(second, 6)  # updated_at moves: read again, with its events
        queries.clear()
        ids, counts, _ = await changed(source)
        assert ids == [second] and counts == [1]
        assert events_fetched(queries) == 1

        # An event whose insert did not move updated_at (a helpdesk without the trigger):
        # the count differs, so the ticket is read again.
        await conn.execute("SET session_replication_role = replica")  # triggers off
        await helpdesk.reply(first, 7)
        await conn.execute("RESET session_replication_role")
        queries.clear()
        ids, counts, _ = await changed(source)
        assert ids == [first] and counts == [2]
        assert events_fetched(queries) == 1


async def test_a_ticket_with_an_event_stamped_later_than_its_change_is_read_again(
    logged, pool
) -> None:
    logged_pool, queries = logged
    async with pool.acquire() as conn:
        helpdesk = await Helpdesk.create(conn)
        ticket = await helpdesk.ticket(created=0)
        await helpdesk.reply(ticket, 10**7)  # stamped years ahead of its updated_at
        source = source_on(logged_pool)
        assert (await changed(source))[0] == [ticket]
        queries.clear()
        assert (await changed(source))[0] == [ticket]  # the engine must see its time come
        assert events_fetched(queries) == 1


async def test_the_default_events_query_is_served_in_order_by_the_index(pool) -> None:
    async with pool.acquire() as conn:
        await Helpdesk.create(conn)
        await conn.execute("SET enable_seqscan = off")
        await conn.execute("SET enable_bitmapscan = off")
        plan = "\n".join(
            row[0]
            for row in await conn.fetch(
                f"EXPLAIN {Settings().source.events_query}", ["1", "2", "3"]
            )
        )
    assert "ticket_events_ticket" in plan
    assert "Sort" not in plan  # before: a sort of every batch's events on ticket_id::text


async def test_the_first_sync_runs_without_cyclic_collection(pool, helpdesk) -> None:
    for minutes in range(3):
        await helpdesk.ticket(created=minutes)
    during: list[bool] = []
    daemon = make_daemon(pool, FakeClock(10))
    daemon.hooks = Hooks(freeze_gc=True, sync_progress=lambda _: during.append(gc.isenabled()))
    await daemon.store.migrate()
    assert gc.isenabled()
    full: list[int] = []  # full collections: one over everything the sync made holds the loop

    def collected(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 2:
            full.append(1)

    gc.callbacks.append(collected)
    try:
        await daemon.poll_once()
    finally:
        gc.callbacks.remove(collected)
        gc.unfreeze()
    assert during == [False]
    assert not full
    assert gc.isenabled()
    assert len(daemon.tracker) == 3

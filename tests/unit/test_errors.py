"""Driver errors arrive as DatabaseUnavailable at the edge of every part that queries."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import asyncpg
import pytest

from sla_monitor.errors import DatabaseRefused, DatabaseUnavailable, translates
from sla_monitor.outbox import OutboxSender
from sla_monitor.sources.sql import SqlSource
from sla_monitor.store import StateStore
from sla_monitor.store.outbox import OutboxStore


@translates
async def failing(error: BaseException) -> int:
    raise error


async def test_a_driver_error_becomes_unavailable_with_its_type_and_text() -> None:
    with pytest.raises(DatabaseUnavailable) as caught:
        await failing(ConnectionRefusedError(111, "Connect call failed"))
    assert str(caught.value) == "ConnectionRefusedError: [Errno 111] Connect call failed"
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)
    assert caught.value.unreachable
    assert caught.value.refusal("database.dsn") is None


async def test_a_connection_whose_protocol_state_broke_is_unavailable() -> None:
    """asyncpg raises InternalClientError when the server ends a session mid-query; a
    leader's lock proof must then step down, not crash the process."""
    with pytest.raises(DatabaseUnavailable) as caught:
        await failing(asyncpg.InternalClientError("cannot switch to state 11"))
    assert "cannot switch to state 11" in str(caught.value)


async def test_other_errors_pass_unchanged() -> None:
    with pytest.raises(KeyError):
        await failing(KeyError("not the database"))


def test_a_refusal_is_unavailable_and_knows_it_was_refused() -> None:
    error = DatabaseUnavailable(asyncpg.InvalidCatalogNameError('database "x" does not exist'))
    assert not error.unreachable
    refused = error.refusal("source.dsn")
    assert isinstance(refused, DatabaseRefused)
    assert str(refused) == (
        'source.dsn: the database does not exist (InvalidCatalogNameError: database "x" does '
        "not exist); fix the configuration"
    )


async def test_a_stream_translates_while_it_streams_and_closes_its_source() -> None:
    closed = []

    @translates
    async def stream() -> AsyncIterator[int]:
        try:
            yield 1
            raise TimeoutError("query timed out")
        finally:
            closed.append(True)

    got = []
    with pytest.raises(DatabaseUnavailable, match="TimeoutError: query timed out"):
        async for item in stream():
            got.append(item)
    assert got == [1] and closed == [True]

    early = stream()
    assert await anext(early) == 1
    await early.aclose()  # a consumer that stops early closes the wrapped stream at once
    assert closed == [True, True]


@pytest.fixture
async def unreachable_pool() -> AsyncIterator[asyncpg.Pool]:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pool = await asyncpg.create_pool(f"postgresql://app@127.0.0.1:{port}/db", min_size=0)
    yield pool
    await pool.close()


async def test_the_store_and_the_source_raise_unavailable_when_the_database_is_away(
    unreachable_pool: asyncpg.Pool,
) -> None:
    store = StateStore(unreachable_pool, "sla_monitor", "helpdesk")
    for call in (store.migrate, store.load_watermark, store.escalated_tickets):
        with pytest.raises(DatabaseUnavailable) as caught:
            await call()
        assert caught.value.unreachable
    with pytest.raises(DatabaseUnavailable):
        await store.record([], None)
    source = SqlSource(unreachable_pool, "helpdesk", "SELECT 1", "SELECT 1", "SELECT 1", [], "new")
    with pytest.raises(DatabaseUnavailable):
        await source.database_now()
    with pytest.raises(DatabaseUnavailable):
        await source.open_ticket_ids()
    with pytest.raises(DatabaseUnavailable):
        async for _ in source.open_tickets():
            pass


async def test_the_outbox_raises_unavailable_when_the_database_is_away(
    unreachable_pool: asyncpg.Pool,
) -> None:
    outbox = OutboxStore(unreachable_pool, "sla_monitor")
    for call in (outbox.backlog, lambda: outbox.retry_parked(None), lambda: outbox.next_due("x")):
        with pytest.raises(DatabaseUnavailable):
            await call()
    with pytest.raises(DatabaseUnavailable):
        async with outbox.claim("claim_any"):
            pass
    sender = OutboxSender(unreachable_pool, "sla_monitor", {}, None)  # type: ignore[arg-type]
    with pytest.raises(DatabaseUnavailable):
        await sender.deliver_one()

"""The ledger's insert path (rows copied into a staging table dropped with the transaction,
then one INSERT ... SELECT ... ON CONFLICT DO NOTHING): exactly once across a repeated
recording, on one connection across many transactions, and nothing of a recording whose
transaction fails, not even its staging table."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from sla_monitor.engine.ledger import LedgerEntry, LedgerKind
from sla_monitor.engine.model import Clock
from sla_monitor.errors import DatabaseUnavailable
from sla_monitor.records import TicketOutcomes
from tests.integration.helpdesk import FakeClock, at, make_daemon

pytestmark = pytest.mark.integration


@pytest.fixture
async def one_connection(database_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool of exactly one connection: every recording reuses its session (and so would
    meet a staging table left behind)."""
    pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=1)
    try:
        yield pool
    finally:
        await pool.close()


def outcomes(ticket_id: str, count: int, policy: str = "default") -> TicketOutcomes:
    """A ticket with ``count`` ledger entries (update windows a minute apart), every column
    filled, and a previous policy and no customer on some."""
    entries = tuple(
        LedgerEntry(
            Clock.UPDATE,
            at(minute).isoformat(),
            LedgerKind.POLICY_CHANGED if minute % 3 == 0 else LedgerKind.STARTED,
            at(minute),
            policy,
            "24x7",
            "normal",
            minute * 60.5,
            "older" if minute % 3 == 0 else None,
        )
        for minute in range(count)
    )
    return TicketOutcomes(
        ticket_id,
        "normal",
        "support",
        (),
        (),
        customer=None if int(ticket_id) % 2 else "acme",
        organization="org",
        policy=policy,
        ledger=entries,
        ledger_through=at(count),
    )


async def stored(pool: asyncpg.Pool) -> list[tuple[object, ...]]:
    rows = await pool.fetch(
        "SELECT ticket_id, clock, window_key, kind, at, policy, calendar, priority,"
        " elapsed_seconds, previous_policy, queue, customer, organization"
        " FROM sla_monitor.ledger ORDER BY ticket_id, at, kind"
    )
    return [tuple(row) for row in rows]


async def test_a_repeated_recording_adds_nothing_and_a_failed_one_leaves_nothing(
    one_connection: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_daemon(one_connection, FakeClock(0)).store
    await store.migrate()
    batch = [outcomes(str(n), 40) for n in range(1, 51)]  # 2,000 rows at once
    first = await store.record(batch, at(1))
    assert first.ledger == 2000
    recorded = await stored(one_connection)
    assert len(recorded) == 2000
    expected = {
        (
            o.ticket_id,
            e.clock.value,
            e.window_key,
            e.kind.value,
            e.at,
            e.policy,
            e.calendar,
            e.priority,
            e.elapsed_seconds,
            e.previous_policy,
            o.queue,
            o.customer,
            o.organization,
        )
        for o in batch
        for e in o.ledger
    }
    assert set(recorded) == expected  # every column as handed over

    # The same entries again (a restart re-deriving them), with new ones and one entry twice
    # within the batch: only the new ones are added, once.
    again = [*batch, outcomes("51", 3), outcomes("51", 3)]
    second = await store.record(again, at(2))
    assert second.ledger == 3
    assert len(await stored(one_connection)) == 2003

    # A recording whose transaction fails after the ledger's insert leaves nothing behind,
    # not even its staging table: the next recording on the same connection works.
    monkeypatch.setattr("sla_monitor.store._SAVE_WATERMARK", "SELECT no_such_column")
    with pytest.raises(DatabaseUnavailable):
        await store.record([outcomes("52", 5)], at(3))
    assert len(await stored(one_connection)) == 2003
    monkeypatch.undo()
    third = await store.record([outcomes("52", 5), outcomes("1", 40, policy="other")], at(3))
    assert third.ledger == 5  # ticket 1's identities are recorded: its first rows stay
    rows = await stored(one_connection)
    assert len(rows) == 2008
    assert {r[5] for r in rows if r[0] == "1"} == {"default"}
    leftover = await one_connection.fetchval(
        "SELECT count(*) FROM pg_class WHERE relname = 'ledger_incoming'"
    )
    assert leftover == 0


async def test_a_role_without_temporary_tables_records_the_ledger_all_the_same(
    database_dsn: str,
) -> None:
    """A database whose TEMPORARY privilege was revoked from PUBLIC: the staging table is
    refused (in a savepoint) and the rows go in as column arrays, in the same transaction,
    once."""
    role = f"slam_notemp_{uuid.uuid4().hex[:8]}"
    database = database_dsn.rsplit("/", 1)[1].split("?")[0]
    admin = await asyncpg.connect(database_dsn)
    owner_pool = None
    try:
        await admin.execute(f"CREATE ROLE {role} LOGIN")
        await admin.execute(f'REVOKE TEMPORARY ON DATABASE "{database}" FROM PUBLIC')
        await admin.execute(f"CREATE SCHEMA sla_monitor AUTHORIZATION {role}")
        parts = urlsplit(database_dsn)
        port = f":{parts.port}" if parts.port else ""
        dsn = urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}{port}"))
        owner_pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
        store = make_daemon(owner_pool, FakeClock(0)).store
        await store.migrate()
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await owner_pool.execute("CREATE TEMPORARY TABLE refused (x int)")
        batch = [outcomes(str(n), 10) for n in range(1, 4)]
        assert (await store.record(batch, at(1))).ledger == 30
        assert (await store.record([*batch, outcomes("4", 2)], at(2))).ledger == 2
        assert len(await stored(owner_pool)) == 32
        assert await store.load_watermark() == at(2)
    finally:
        if owner_pool is not None:
            await owner_pool.close()
        await admin.execute(f"DROP OWNED BY {role} CASCADE")
        for _ in range(50):  # the role's connection may still be closing
            try:
                await admin.execute(f"DROP ROLE IF EXISTS {role}")
                break
            except asyncpg.DependentObjectsStillInUseError:
                await asyncio.sleep(0.1)
        await admin.close()

"""The SLA ledger in a real PostgreSQL: recorded with the outcomes in one transaction, once
across restarts, nothing lost by a crash between judging and recording, as derived; no
subject in it."""

from __future__ import annotations

import asyncpg
import pytest

from sla_monitor.config import Settings, policy_set
from sla_monitor.engine.ledger import derive_ledger
from sla_monitor.errors import DatabaseUnavailable
from tests.integration.helpdesk import FakeClock, Helpdesk, at, make_daemon

pytestmark = pytest.mark.integration
SECRET = "password=hunter2-ledger-canary"
POLICIES = {
    "default": {},
    "urgent": {"priorities": ["urgent"], "first_response": "15m", "resolution": "4h"},
}


async def rows(pool: asyncpg.Pool) -> list[tuple]:
    found = await pool.fetch(
        "SELECT ticket_id, clock, window_key, kind, at, policy, calendar, priority,"
        " elapsed_seconds, previous_policy FROM sla_monitor.ledger"
        " ORDER BY ticket_id, at, clock, window_key, kind"
    )
    return [tuple(row) for row in found]


ESCALATING = {"enabled": True, "channels": {"alertmanager": {"url": "http://127.0.0.1:9"}}}


async def count(pool: asyncpg.Pool, table: str) -> int:
    found: int = await pool.fetchval(f"SELECT count(*) FROM sla_monitor.{table}")
    return found


@pytest.mark.parametrize(
    "failing",
    [
        "_RECORD_LEDGER",  # after the breaches and completions
        "_TRIGGER_ESCALATIONS",  # after the ledger
    ],
)
async def test_entries_and_outcomes_are_one_transaction(
    pool, helpdesk, monkeypatch, failing
) -> None:
    ticket = await helpdesk.ticket(created=0)
    await helpdesk.reply(ticket, 80)  # first response breached at 60, then stopped
    await helpdesk.ticket(created=0)  # unanswered: breached, escalated
    daemon = make_daemon(pool, FakeClock(90), Settings(escalation=ESCALATING))
    await daemon.store.migrate()
    # One statement of the recording's transaction fails: nothing of it stays.
    monkeypatch.setattr(f"sla_monitor.store.{failing}", "SELECT no_such_column")
    with pytest.raises(DatabaseUnavailable):
        await daemon.poll_once()
    for table in ("ledger", "breaches", "completions", "escalations"):
        assert await count(pool, table) == 0, table
    monkeypatch.undo()
    await daemon.poll_once()
    assert await count(pool, "breaches") == 2
    assert await count(pool, "escalations") > 0
    kinds = {
        (row["clock"], row["kind"], row["at"])
        for row in await pool.fetch("SELECT clock, kind, at FROM sla_monitor.ledger")
    }
    assert ("first_response", "breached", at(60)) in kinds
    assert ("first_response", "stopped", at(80)) in kinds


async def test_a_restart_adds_no_row_and_the_table_is_the_derived_ledger(pool, helpdesk) -> None:
    paused = await helpdesk.ticket(created=0, subject=SECRET)
    await helpdesk.set_status(paused, 20, "pending")
    await helpdesk.set_status(paused, 35, "open")
    flapping = await helpdesk.ticket(created=0, priority="normal")
    await helpdesk.event(flapping, 10, "priority_change", "urgent", "normal")
    await helpdesk.event(flapping, 12, "priority_change", "normal", "urgent")
    done = await helpdesk.ticket(created=0)
    await helpdesk.reply(done, 5)
    await helpdesk.set_status(done, 30, "resolved")
    await helpdesk.set_status(done, 40, "open")  # re-opened

    clock = FakeClock(50)
    settings = Settings(policies=POLICIES)
    first = make_daemon(pool, clock, settings)
    await first.store.migrate()
    await first.poll_once()
    for minutes in (61, 75, 90, 130):  # the timers: at risk, breached
        clock.set(minutes)
        await first.refresh_due()
        await first.poll_once()
    recorded = await rows(pool)
    assert recorded

    restarted = make_daemon(pool, clock, settings)  # a new store and daemon over the same database
    await restarted.store.migrate()
    await restarted.poll_once()  # reads every open ticket again
    assert await rows(pool) == recorded

    # Nothing was lost between the timers: the table holds exactly the ledger derived at the
    # end from each ticket's history (plus the resolved ticket's, recorded when read).
    policies = policy_set(settings)
    async with pool.acquire() as conn:
        source = restarted.source
        for ticket_id in (paused, flapping, done):
            found = await source.ticket(ticket_id)  # type: ignore[attr-defined]
            expected = derive_ledger(found, policies, at(130))
            stored = await restarted.store.ledger(ticket_id)
            assert stored == list(expected), ticket_id
        dumped = await conn.fetchval("SELECT string_agg(l::text, ' ') FROM sla_monitor.ledger l")
    assert SECRET not in dumped and "hunter2" not in dumped
    kinds = {(r[0], r[1], r[3]) for r in recorded}
    assert (paused, "first_response", "paused") in kinds
    assert (paused, "first_response", "resumed") in kinds
    assert (flapping, "first_response", "policy_changed") in kinds
    assert (done, "resolution", "met") in kinds and (done, "resolution", "reopened") in kinds


async def test_a_crash_between_judging_and_recording_loses_nothing(
    pool, helpdesk, monkeypatch
) -> None:
    await helpdesk.ticket(created=0)
    clock = FakeClock(10)
    crashed = make_daemon(pool, clock)
    await crashed.store.migrate()
    await crashed.poll_once()
    before = await rows(pool)
    clock.set(50)

    async def dies(*args, **kwargs):
        raise SystemExit("killed between judging and recording")

    monkeypatch.setattr(crashed.store, "record", dies)
    with pytest.raises(SystemExit):
        await crashed.refresh_due()  # at risk at 45: judged, never recorded
    assert await rows(pool) == before

    clock.set(55)
    started = make_daemon(pool, clock)  # the next process
    await started.store.migrate()
    await started.poll_once()
    kinds = {(r[1], r[3], r[4]) for r in await rows(pool)}
    assert ("first_response", "at_risk", at(45)) in kinds
    assert set(before) <= set(await rows(pool))


async def test_the_ledger_costs_one_row_per_transition(
    pool: asyncpg.Pool, helpdesk: Helpdesk
) -> None:
    await helpdesk.ticket(created=0)
    daemon = make_daemon(pool, FakeClock(10))
    await daemon.store.migrate()
    await daemon.poll_once()
    # started for first_response, resolution and update: three rows, nothing else yet
    assert await pool.fetchval("SELECT count(*) FROM sla_monitor.ledger") == 3

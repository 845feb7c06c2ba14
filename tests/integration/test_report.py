"""Reports read the daemon's own schema: outcomes recorded with the customer, and the
`sla-monitor report` command over them."""

from __future__ import annotations

import asyncpg
import pytest

from tests.integration.helpdesk import FakeClock, make_daemon

pytestmark = pytest.mark.integration


async def test_breaches_and_completions_are_recorded_with_the_customer(pool, helpdesk) -> None:
    answered = await helpdesk.ticket(created=0)
    await helpdesk.reply(answered, 5)
    await helpdesk.set_status(answered, 30, "resolved")
    late = await helpdesk.ticket(created=0)
    await helpdesk.conn.execute(
        "UPDATE helpdesk.tickets SET requester_email = 'ann@acme.example',"
        " organization = 'Acme' WHERE id = $1",
        int(answered),
    )
    daemon = make_daemon(pool, FakeClock(90))
    await daemon.store.migrate()
    await daemon.poll_once()
    await daemon.poll_once()
    async with pool.acquire() as conn:
        completions = await conn.fetch(
            "SELECT ticket_id, clock, customer, organization, policy"
            " FROM sla_monitor.completions ORDER BY clock"
        )
        breaches = await conn.fetch(
            "SELECT ticket_id, customer, organization, policy FROM sla_monitor.breaches"
        )
    assert {tuple(r) for r in completions} >= {
        (answered, "first_response", "ann@acme.example", "Acme", "default"),
        (answered, "resolution", "ann@acme.example", "Acme", "default"),
    }
    # The other ticket says nothing of who it is for: NULL, not a guess.
    assert [tuple(r) for r in breaches] == [(late, None, None, "default")]


async def test_the_customer_migration_backfills_nothing(pool: asyncpg.Pool) -> None:
    daemon = make_daemon(pool, FakeClock(0))
    await daemon.store.migrate()
    async with pool.acquire() as conn:
        nullable = await conn.fetch(
            "SELECT table_name, column_name, is_nullable FROM information_schema.columns"
            " WHERE table_schema = 'sla_monitor' AND column_name IN"
            " ('customer', 'organization', 'policy') ORDER BY 1, 2"
        )
    assert [tuple(r) for r in nullable] == [
        (table, column, "YES")
        for table in ("breaches", "completions")
        for column in ("customer", "organization", "policy")
    ]

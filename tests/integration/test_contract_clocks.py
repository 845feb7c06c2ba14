"""The contract clocks end to end against the reference schema and a real PostgreSQL: a late
answer to a customer message is a next_reply breach in the metrics and the store, and a
ticket paused past max_pause queues a pause_limit escalation in the outbox."""

from __future__ import annotations

import json

import asyncpg
import pytest

from sla_monitor.config import Settings
from tests.integration.helpdesk import FakeClock, Helpdesk, at, completed, make_daemon, sample

pytestmark = pytest.mark.integration
SUPPORT = {"priority": "normal", "queue": "support"}


async def test_a_customer_message_answered_late_is_a_next_reply_breach(
    pool: asyncpg.Pool, helpdesk: Helpdesk
) -> None:
    ticket = await helpdesk.ticket(created=0, status="open")
    await helpdesk.reply(ticket, 5)  # first response in time
    await helpdesk.event(ticket, 10, "customer_message")
    await helpdesk.event(ticket, 15, "customer_message")  # the same window
    clock = FakeClock(20)
    settings = Settings.model_validate({"policies": {"default": {"next_reply": "30m"}}})
    daemon = make_daemon(pool, clock, settings)
    await daemon.store.migrate()
    await daemon.poll_once()
    running = {"clock": "next_reply", **SUPPORT}
    assert sample(daemon, "sla_monitor_open_tickets", state="ok", **running) == 1

    # Its deadline (10 + 30 min) is a timer: breached at 40 without any change.
    clock.set(41)
    await daemon.poll_once()
    assert sample(daemon, "sla_monitor_open_tickets", state="breached", **running) == 1
    assert sample(daemon, "sla_monitor_breaches_total", **running) == 1

    await helpdesk.reply(ticket, 60)
    clock.set(61)
    await daemon.poll_once()
    assert completed(daemon, "next_reply", "breached") == 1
    assert completed(daemon, "next_reply", "met") == 0
    assert sample(daemon, "sla_monitor_next_reply_seconds_count", **SUPPORT) == 1
    assert sample(daemon, "sla_monitor_next_reply_seconds_sum", **SUPPORT) == 50 * 60
    assert sample(daemon, "sla_monitor_breaches_total", **running) == 1  # counted once
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT window_key, met FROM sla_monitor.completions WHERE clock = 'next_reply'"
        )
    assert [(r["window_key"], r["met"]) for r in rows] == [(at(10).isoformat(), False)]


async def test_a_ticket_paused_past_max_pause_escalates_until_it_resumes(
    pool: asyncpg.Pool, helpdesk: Helpdesk
) -> None:
    ticket = await helpdesk.ticket(created=0)
    await helpdesk.reply(ticket, 5)
    await helpdesk.set_status(ticket, 10, "pending")
    settings = Settings.model_validate(
        {
            "policies": {"default": {"max_pause": "2h"}},
            "escalation": {
                "enabled": True,
                "levels": [{"name": "stuck", "when": "pause_limit", "channels": ["alertmanager"]}],
            },
        }
    )
    clock = FakeClock(60)
    daemon = make_daemon(pool, clock, settings)
    await daemon.store.migrate()
    await daemon.poll_once()
    assert await outbox(pool) == []
    assert sample(daemon, "sla_monitor_paused_too_long", **SUPPORT) == 0
    # Every clock is paused: only the pause limit's timer (10 + 2 h) wakes the daemon.
    assert daemon.tracker.next_due() == at(130)

    clock.set(130)
    await daemon.poll_once()
    (trigger,) = await outbox(pool)
    assert trigger["action"] == "trigger"
    assert trigger["dedup_key"] == f"helpdesk/{ticket}/resolution/stuck/{at(10).isoformat()}"
    alert = json.loads(trigger["payload"])
    assert alert["labels"]["alertname"] == "SLAPauseLimit"
    assert "paused for 2h" in alert["annotations"]["summary"]
    assert sample(daemon, "sla_monitor_paused_too_long", **SUPPORT) == 1

    await helpdesk.set_status(ticket, 140, "open")
    clock.set(141)
    await daemon.poll_once()
    assert [row["action"] for row in await outbox(pool)] == ["trigger", "resolve"]
    assert sample(daemon, "sla_monitor_paused_too_long", **SUPPORT) == 0


async def outbox(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return list(
            await conn.fetch(
                "SELECT dedup_key, action, payload FROM sla_monitor.outbox ORDER BY id"
            )
        )

"""Customer progress updates end to end, posted into the helpdesk database."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from sla_monitor.app import build_sender
from sla_monitor.config import Settings
from sla_monitor.sources.sql import REFERENCE_SCHEMA
from tests.integration.helpdesk import FakeClock, at, make_daemon, sample
from tests.integration.peers import free_port, until
from tests.integration.test_cli import EX_CONFIG, sla_monitor, spawn_daemon

pytestmark = pytest.mark.integration
TEMPLATES = Path(__file__).parents[2] / "config" / "templates"


def update_settings(**updates: Any) -> Settings:
    return Settings(
        updates={"enabled": True, "templates_dir": str(TEMPLATES), "quiet_hours": "off", **updates}
    )


class Harness:
    """A daemon and its outbox sender on an injected clock."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings, minutes: float) -> None:
        self.clock = FakeClock(minutes)
        self.daemon = make_daemon(pool, self.clock, settings)

        self.sender = build_sender(settings, self.daemon.tracker, self.daemon.metrics, pool)
        self.pool = pool

    async def cycle(self, minutes: float) -> int:
        """Advances the clock, polls, delivers; returns the messages delivered."""
        self.clock.set(minutes)
        await self.daemon.poll_once()
        delivered = await self.sender.deliver_due()
        # The helpdesk stamps a posted update with its own clock; give it the injected one.
        async with self.pool.acquire() as conn:
            await conn.execute(
                "UPDATE helpdesk.ticket_events SET created_at = $1 "
                "WHERE kind = 'automatic_update' AND created_at > $1",
                self.clock.now,
            )
        return delivered

    async def posted(self, ticket: str) -> list[asyncpg.Record]:
        async with self.pool.acquire() as conn:
            return await conn.fetch(
                "SELECT body, author, idempotency_key FROM helpdesk.ticket_events "
                "WHERE ticket_id = $1 AND kind = 'automatic_update' ORDER BY id",
                int(ticket),
            )


async def started(pool: asyncpg.Pool, settings: Settings, minutes: float) -> Harness:
    harness = Harness(pool, settings, minutes)
    await harness.daemon.store.migrate()
    return harness


async def test_a_long_running_ticket_gets_one_update_per_window(pool, helpdesk) -> None:
    ticket = await helpdesk.ticket(created=0, subject="Mail delayed")
    await helpdesk.reply(ticket, 30)
    h = await started(pool, update_settings(), 100)
    assert await h.cycle(100) == 0  # 70 min since the reply: nothing owed
    assert await h.cycle(30 + 241) == 1
    posted = await h.posted(ticket)
    assert len(posted) == 1
    assert posted[0]["author"] == "sla-monitor"
    assert f"#{ticket}" in posted[0]["body"] and "Mail delayed" in posted[0]["body"]
    assert "opened 4h 31m ago" in posted[0]["body"]
    assert posted[0]["idempotency_key"] == f"helpdesk/{ticket}/update/{at(30).isoformat()}"
    # Recorded with the ticket's groupings, for the report's updates owed and sent.
    async with pool.acquire() as conn:
        grouped = await conn.fetchrow(
            "SELECT queue, priority, policy, customer, organization FROM"
            " sla_monitor.customer_updates"
        )
    assert tuple(grouped) == ("support", "normal", "default", None, None)
    # The update itself is news: the next window starts at it, 4 h later the next is owed.
    for minutes in (30 + 250, 30 + 300, 30 + 400, 271 + 239):
        assert await h.cycle(minutes) == 0
    assert len(await h.posted(ticket)) == 1
    assert await h.cycle(271 + 241) == 1
    second = (await h.posted(ticket))[1]["idempotency_key"]
    assert second == f"helpdesk/{ticket}/update/{at(271).isoformat()}"
    assert sample(h.daemon, "sla_monitor_customer_updates_total", result="sent") == 2
    await h.sender.close()


async def test_updates_speak_the_customers_language(pool, helpdesk) -> None:
    ticket = await helpdesk.ticket(created=0)
    await helpdesk.conn.execute(
        "UPDATE helpdesk.tickets SET requester_language = 'de-AT' WHERE id = $1", int(ticket)
    )
    other = await helpdesk.ticket(created=0)
    await helpdesk.conn.execute(
        "UPDATE helpdesk.tickets SET requester_language = 'xx' WHERE id = $1", int(other)
    )
    h = await started(pool, update_settings(), 300)
    assert await h.cycle(300) == 2
    assert "Zwischenstand zu Ihrer Anfrage" in (await h.posted(ticket))[0]["body"]
    assert "this is an update on your request" in (await h.posted(other))[0]["body"]
    await h.sender.close()


async def test_never_after_resolution_nor_while_waiting_for_the_customer(pool, helpdesk) -> None:
    resolved = await helpdesk.ticket(created=0)
    await helpdesk.set_status(resolved, 10, "resolved")
    waiting = await helpdesk.ticket(created=0)
    await helpdesk.set_status(waiting, 10, "pending")
    h = await started(pool, update_settings(), 600)
    assert await h.cycle(600) == 0
    assert await h.posted(resolved) == [] and await h.posted(waiting) == []
    await h.sender.close()


async def test_quiet_hours_in_the_customers_time_zone(pool, helpdesk) -> None:
    # T0 is 09:00 UTC; 5 h later is 14:00 UTC = 23:00 in Tokyo, 15:00 in Berlin.
    tokyo = await helpdesk.ticket(created=0)
    await helpdesk.conn.execute(
        "UPDATE helpdesk.tickets SET requester_timezone = 'Asia/Tokyo' WHERE id = $1", int(tokyo)
    )
    berlin = await helpdesk.ticket(created=0)
    await helpdesk.conn.execute(
        "UPDATE helpdesk.tickets SET requester_timezone = 'Europe/Berlin' WHERE id = $1",
        int(berlin),
    )
    h = await started(pool, update_settings(quiet_hours="22:00-08:00"), 300)
    assert await h.cycle(300) == 1
    assert await h.posted(tokyo) == [] and len(await h.posted(berlin)) == 1
    # 23:30 UTC = 08:30 in Tokyo: the deferred update goes out.
    assert await h.cycle(14 * 60 + 30) == 1
    assert len(await h.posted(tokyo)) == 1
    await h.sender.close()


async def test_the_daily_cap_per_ticket(pool, helpdesk) -> None:
    ticket = await helpdesk.ticket(created=0)
    # Every staff reply opens a window; with no reply for 4 h an update is owed in each.
    h = await started(pool, update_settings(max_per_day=2, min_ticket_age=0), 0)
    posted_per_window = []
    for window, start in enumerate((0, 300, 600)):
        if window:
            await helpdesk.reply(ticket, start)
        posted_per_window.append(await h.cycle(start + 245))
    assert posted_per_window == [1, 1, 0]  # the third within 24 h is capped
    assert await h.cycle(24 * 60 + 300) == 1  # a day after the first, the cap allows it
    assert len(await h.posted(ticket)) == 3
    await h.sender.close()


async def test_remind_mode_escalates_to_staff_instead(pool, helpdesk) -> None:
    ticket = await helpdesk.ticket(created=0)
    await helpdesk.reply(ticket, 10)
    settings = Settings(
        updates={"enabled": True, "mode": "remind", "remind_channels": ["alertmanager"]},
        escalation={"channels": {"alertmanager": {"url": "http://127.0.0.1:9"}}, "backlog": "page"},
    )
    daemon = make_daemon(pool, FakeClock(10 + 245), settings)
    await daemon.store.migrate()
    await daemon.poll_once()
    async with pool.acquire() as conn:
        keys = [
            r["dedup_key"] for r in await conn.fetch("SELECT dedup_key FROM sla_monitor.outbox")
        ]
        events = await conn.fetchval(
            "SELECT count(*) FROM helpdesk.ticket_events WHERE kind = 'automatic_update'"
        )
    # One reminder per expired update window: the key carries the window's start (the reply).
    assert keys == [f"helpdesk/{ticket}/update/update_owed/{at(10).isoformat()}"]
    assert events == 0


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Hello {{ ticket_id.__class__.__mro__ }}", "SecurityError"),
        ("Hello {{ customer_name }}", "UndefinedError"),
        ("Hello {{ ticket_id ", "TemplateSyntaxError"),
    ],
)
def test_template_errors_fail_the_config_check(
    tmp_path: Path, template: str, expected: str
) -> None:
    (tmp_path / "update.en.txt").write_text(template)
    config = tmp_path / "c.toml"
    config.write_text(f'[updates]\nenabled = true\ntemplates_dir = "{tmp_path}"\n')
    result = sla_monitor("--config", str(config), "check-config")
    assert result.returncode == EX_CONFIG
    assert "updates" in result.stderr and str(tmp_path / "update.en.txt") in result.stderr
    assert expected in result.stderr


def test_a_missing_fallback_template_fails_the_config_check(tmp_path: Path) -> None:
    (tmp_path / "update.de.txt").write_text("Hallo")
    config = tmp_path / "c.toml"
    config.write_text(f'[updates]\nenabled = true\ntemplates_dir = "{tmp_path}"\n')
    result = sla_monitor("--config", str(config), "check-config")
    assert result.returncode == EX_CONFIG
    assert "no template update.en.txt" in result.stderr


async def test_sigkill_while_sending_never_posts_twice(database_dsn: str, tmp_path: Path) -> None:
    tickets = 150
    conn = await asyncpg.connect(database_dsn)
    await conn.execute(REFERENCE_SCHEMA)
    await conn.executemany(
        "INSERT INTO helpdesk.tickets (subject, status, created_at) VALUES ($1, 'open', $2)",
        [(f"ticket {n}", datetime.now(UTC) - timedelta(hours=5)) for n in range(tickets)],
    )
    config = tmp_path / "c.toml"
    config.write_text(
        f'[daemon]\npoll_interval = "1s"\n[updates]\nenabled = true\n'
        f'quiet_hours = "off"\ntemplates_dir = "{TEMPLATES}"\n'
    )
    rng = random.Random(7)

    def start() -> subprocess.Popen[str]:
        return spawn_daemon(database_dsn, free_port(), config)

    async def posted() -> int:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM helpdesk.ticket_events WHERE kind = 'automatic_update'"
            )
        )

    for _ in range(8):
        process = start()
        await asyncio.sleep(rng.uniform(0.4, 2.0))
        process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(process.wait)
    process = start()
    try:
        await until(lambda: _all_posted(conn, tickets), "every ticket got its update", 120)
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 10)
    per_ticket = await conn.fetch(
        "SELECT ticket_id, count(*) AS n FROM helpdesk.ticket_events "
        "WHERE kind = 'automatic_update' GROUP BY ticket_id"
    )
    assert len(per_ticket) == tickets
    assert {r["n"] for r in per_ticket} == {1}
    assert await posted() == tickets
    await conn.close()


async def _all_posted(conn: asyncpg.Connection, tickets: int) -> bool:
    try:
        pending = await conn.fetchval(
            "SELECT count(*) FROM sla_monitor.outbox WHERE delivered_at IS NULL"
        )
    except asyncpg.UndefinedTableError:
        return False
    posted = await conn.fetchval(
        "SELECT count(DISTINCT ticket_id) FROM helpdesk.ticket_events "
        "WHERE kind = 'automatic_update'"
    )
    return bool(pending == 0 and posted == tickets)


async def test_an_update_queued_before_resolution_is_cancelled_not_posted(pool, helpdesk) -> None:
    ticket = await helpdesk.ticket(created=0)
    kept = await helpdesk.ticket(created=0)
    h = await started(pool, update_settings(), 300)
    await h.daemon.poll_once()  # both updates queued; the channel is slow, none sent yet
    await helpdesk.set_status(ticket, 301, "resolved")
    h.clock.set(302)
    await h.daemon.poll_once()
    assert await h.sender.deliver_due() == 2
    assert await h.posted(ticket) == [] and len(await h.posted(kept)) == 1
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT delivered_at, cancelled_at, last_error FROM sla_monitor.outbox "
            "WHERE payload->>'ticket_id' = $1",
            ticket,
        )
    assert row["cancelled_at"] is not None and row["delivered_at"] is not None
    assert row["last_error"] == "cancelled: ticket no longer owes an update"
    assert sample(h.daemon, "sla_monitor_customer_updates_total", result="cancelled") == 1
    assert sample(h.daemon, "sla_monitor_customer_updates_total", result="sent") == 1
    assert sample(h.daemon, "sla_monitor_outbox_pending") == 0
    await h.sender.close()


async def test_an_update_waits_until_the_daemon_knows_it_is_still_owed(pool, helpdesk) -> None:
    ticket = await helpdesk.ticket(created=0)
    first = await started(pool, update_settings(), 300)
    await first.daemon.poll_once()  # queued, then the daemon restarts before sending it
    await first.sender.close()
    h = await started(pool, update_settings(), 301)
    assert await h.sender.deliver_due() == 1  # looked at, deferred: not synced yet
    assert await h.posted(ticket) == []
    assert sample(h.daemon, "sla_monitor_outbox_pending") == 1
    await h.daemon.poll_once()
    async with pool.acquire() as conn:
        await conn.execute("UPDATE sla_monitor.outbox SET next_attempt_at = now()")
    assert await h.sender.deliver_due() == 1
    assert len(await h.posted(ticket)) == 1
    await h.sender.close()

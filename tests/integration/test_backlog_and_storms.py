"""A first start on a backlog (one summary per level and channel, or a page each, or nothing
sent) and the storm guard (beyond max_pages_per_minute, one digest per channel and minute),
against a fake PagerDuty and Slack and a real PostgreSQL outbox."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from sla_monitor.app import build_sender
from sla_monitor.config import Settings
from sla_monitor.daemon import Daemon
from sla_monitor.outbox import OutboxSender
from sla_monitor.sources.sql import REFERENCE_SCHEMA
from tests.integration.helpdesk import FakeClock, Helpdesk, at, make_daemon, sample
from tests.integration.peers import FakePeer, PeerServer, free_port, until
from tests.integration.test_cli import spawn_daemon

pytestmark = pytest.mark.integration
BACKLOG = 300


@pytest.fixture
async def peer() -> AsyncIterator[tuple[FakePeer, PeerServer]]:
    fake = FakePeer()
    server = PeerServer(fake)
    await server.start()
    try:
        yield fake, server
    finally:
        await server.stop()


def settings(url: str, public_url: str | None = None, **escalation: Any) -> Settings:
    channels = ["pagerduty", "slack"]
    return Settings(
        http={"public_url": public_url},
        escalation={
            "enabled": True,
            "ticket_url": "https://helpdesk.example/t/{ticket_id}",
            "retry_initial": 0,
            "channels": {
                "pagerduty": {"url": f"{url}/pagerduty", "routing_key": "k"},
                "slack": {"webhook_url": f"{url}/slack"},
            },
            "levels": [
                {"name": "team", "when": "at_risk", "channels": channels},
                {"name": "oncall", "when": "breached", "channels": channels},
            ],
            **escalation,
        },
    )


async def backlog(helpdesk: Helpdesk, count: int, created: float = 0) -> list[str]:
    """``count`` tickets created at ``created`` minutes (breached an hour later)."""
    rows = await helpdesk.conn.fetch(
        "INSERT INTO helpdesk.tickets (subject, created_at) "
        "SELECT 'old ' || n, $2 FROM generate_series(1, $1) AS n RETURNING id",
        count,
        at(created),
    )
    return [str(row["id"]) for row in rows]


async def started(pool: asyncpg.Pool, clock: FakeClock, s: Settings) -> tuple[Daemon, OutboxSender]:
    daemon = make_daemon(pool, clock, s)
    await daemon.store.migrate()
    return daemon, build_sender(s, daemon.tracker, daemon.metrics, pool)


async def escalations(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return await conn.fetch(
            "SELECT dedup_key, backlog, resolved_at FROM sla_monitor.escalations ORDER BY 1"
        )


async def test_a_first_start_on_a_backlog_sends_one_summary_per_level_and_channel(
    pool: asyncpg.Pool, helpdesk: Helpdesk, peer: tuple[FakePeer, PeerServer]
) -> None:
    fake, server = peer
    old = await backlog(helpdesk, BACKLOG)
    clock = FakeClock(70)  # every backlog ticket is at risk and breached: team and oncall
    daemon, sender = await started(pool, clock, settings(server.url))
    await daemon.poll_once()
    await sender.deliver_due()

    recorded = await escalations(pool)
    assert len(recorded) == 2 * BACKLOG and all(row["backlog"] for row in recorded)
    assert sample(daemon, "sla_monitor_breaches_total", clock="first_response",
                  priority="normal", queue="support") == BACKLOG  # fmt: skip
    events = fake.bodies("/pagerduty")
    started_at = at(70).isoformat()
    assert sorted(e["dedup_key"] for e in events) == [
        f"helpdesk/backlog/oncall/{started_at}",
        f"helpdesk/backlog/team/{started_at}",
    ]
    oncall = next(e for e in events if "/oncall/" in e["dedup_key"])
    assert oncall["event_action"] == "trigger"
    assert oncall["payload"]["summary"] == (
        "300 tickets were already breached when monitoring started: 300 first_response"
    )
    assert oncall["payload"]["custom_details"]["count"] == "300"
    assert oncall["links"] == [{"href": "https://helpdesk.example/", "text": "Helpdesk"}]
    slack = [body["text"] for body in fake.bodies("/slack")]
    assert len(slack) == 2
    assert any(
        "300 tickets were at risk or breached when monitoring started" in text for text in slack
    )
    assert all("<https://helpdesk.example/|open helpdesk>" in text for text in slack)

    # A new breach after the sync pages as usual.
    fresh = await helpdesk.ticket(created=70)
    clock.set(131)
    await daemon.poll_once()
    await sender.deliver_due()
    keys = [e["dedup_key"] for e in fake.bodies("/pagerduty")]
    assert sorted(keys[2:]) == [
        f"helpdesk/{fresh}/first_response/oncall",
        f"helpdesk/{fresh}/first_response/team",
    ]

    # A backlog ticket answered: its escalations resolve in the store, and no resolve goes
    # out for a trigger never sent.
    await helpdesk.reply(old[0], 132)
    clock.set(133)
    await daemon.poll_once()
    await sender.deliver_due()
    resolved = [r for r in await escalations(pool) if r["resolved_at"] is not None]
    assert {r["dedup_key"] for r in resolved} == {
        f"helpdesk/{old[0]}/first_response/team",
        f"helpdesk/{old[0]}/first_response/oncall",
    }
    assert not [e for e in fake.bodies("/pagerduty") if e["event_action"] == "resolve"]

    # A restart (the watermark is stored) summarizes nothing again.
    sent = len(fake.requests)
    clock.set(134)
    again, sender = await started(pool, clock, settings(server.url))
    await again.poll_once()
    await sender.deliver_due()
    assert len(fake.requests) == sent
    await sender.close()


async def test_with_a_public_url_the_summaries_link_the_board_and_the_api_listing(
    pool: asyncpg.Pool, helpdesk: Helpdesk, peer: tuple[FakePeer, PeerServer]
) -> None:
    fake, server = peer
    await backlog(helpdesk, 10)
    board = "https://ops.example/sla/"
    daemon, sender = await started(
        pool, FakeClock(70), settings(server.url, "https://ops.example/sla")
    )
    await daemon.poll_once()
    await sender.deliver_due()

    api = f"{board}api/v1/tickets?state="
    links = {e["dedup_key"].split("/")[2]: e["links"] for e in fake.bodies("/pagerduty")}
    assert links == {
        level: [{"href": board, "text": "Board"}, {"href": f"{api}{states}", "text": "API listing"}]
        for level, states in (("team", "at_risk,breached"), ("oncall", "breached"))
    }
    slack = sorted(body["text"] for body in fake.bodies("/slack"))
    assert [text.split(" when monitoring started")[0].split(" ", 1)[1] for text in slack] == [
        "10 tickets were already breached",
        "10 tickets were at risk or breached",
    ]
    assert slack[0].endswith(f" <{board}|open board> \u00b7 <{api}breached|API listing>")
    assert slack[1].endswith(f" <{board}|open board> \u00b7 <{api}at_risk,breached|API listing>")
    assert "helpdesk.example" not in " ".join(slack)
    await sender.close()


async def test_a_first_start_stopped_before_its_watermark_summarizes_at_the_next(
    pool: asyncpg.Pool, helpdesk: Helpdesk, peer: tuple[FakePeer, PeerServer]
) -> None:
    """A crash after the sync recorded the backlog but before the first watermark: the next
    start is a first start again, and its summary counts what the first one recorded."""
    fake, server = peer
    await backlog(helpdesk, 10)
    clock = FakeClock(70)
    first, _ = await started(pool, clock, settings(server.url))
    first.judge.escalations.begin_backlog(clock())
    await first._read_open_tickets()  # the sync's recordings, then "killed"
    assert len(await escalations(pool)) == 20
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM sla_monitor.outbox") == 0
    clock.set(71)
    daemon, sender = await started(pool, clock, settings(server.url))
    await daemon.poll_once()
    await sender.deliver_due()
    summaries = [e["payload"]["summary"] for e in fake.bodies("/pagerduty")]
    assert sorted(summaries) == [
        "10 tickets were already breached when monitoring started: 10 first_response",
        "10 tickets were at risk or breached when monitoring started: 10 first_response",
    ]
    await sender.close()


@pytest.mark.parametrize(("mode", "triggers"), [("page", 2 * 2 * 12), ("record", 0)])
async def test_page_and_record_modes(
    pool: asyncpg.Pool,
    helpdesk: Helpdesk,
    peer: tuple[FakePeer, PeerServer],
    mode: str,
    triggers: int,
) -> None:
    fake, server = peer
    await backlog(helpdesk, 12)
    daemon, sender = await started(pool, FakeClock(70), settings(server.url, backlog=mode))
    await daemon.poll_once()
    await sender.deliver_due()
    recorded = await escalations(pool)
    assert len(recorded) == 2 * 12
    assert all(row["backlog"] == (mode == "record") for row in recorded)
    assert len(fake.requests) == triggers  # two levels, two channels, 12 tickets each
    await sender.close()


async def test_the_storm_guard_sends_a_digest_beyond_the_limit_and_loses_nothing(
    pool: asyncpg.Pool, helpdesk: Helpdesk, peer: tuple[FakePeer, PeerServer]
) -> None:
    fake, server = peer
    s = Settings(
        escalation={
            "enabled": True,
            "ticket_url": "https://helpdesk.example/t/{ticket_id}",
            "retry_initial": 0,
            "max_pages_per_minute": 5,
            "channels": {"pagerduty": {"url": f"{server.url}/pagerduty", "routing_key": "k"}},
            "levels": [{"name": "oncall", "when": "breached", "channels": ["pagerduty"]}],
        }
    )
    daemon, _ = await started(pool, FakeClock(0), s)
    await daemon.poll_once()  # the first start, on an empty helpdesk
    tickets = await backlog(helpdesk, 20, created=0)
    daemon.clock = FakeClock(61)
    await daemon.poll_once()  # 20 new breaches in one minute

    # The channel is down: the first sender folds 15 triggers into the minute's digest
    # (committed with their claims), then "crashes" with nothing delivered.
    fake.down = True
    minute = datetime.now(UTC).replace(second=0, microsecond=0)
    clock = {"now": datetime.now(UTC)}
    notifiers = build_sender(s, daemon.tracker, daemon.metrics, pool).notifiers

    def guarded() -> OutboxSender:
        return OutboxSender(
            pool,
            "sla_monitor",
            notifiers,
            daemon.metrics,
            retry_initial=0,
            max_pages_per_minute=5,
            clock=lambda: clock["now"],
        )

    crashed = guarded()
    for _ in range(20):
        await crashed.deliver_one("pagerduty")
    await crashed.close()
    assert not fake.requests
    assert sample(daemon, "sla_monitor_pages_digested_total", channel="pagerduty") == 15

    # The next sender, back on a channel that answers, sends the 5 pages at once (its first
    # pass probes, then drains), but not the digest before the minute is over.
    fake.down = False
    sender = guarded()
    await sender._channel_pass(sender._channels["pagerduty"])
    assert len(fake.bodies("/pagerduty")) == 5
    async with pool.acquire() as conn:
        digest = "SELECT delivered_at FROM sla_monitor.outbox WHERE payload->>'kind' = 'digest'"
        assert [row["delivered_at"] for row in await conn.fetch(digest)] == [None]
        # The minute is over (for the database too): the digest goes, once.
        await conn.execute(
            "UPDATE sla_monitor.outbox SET next_attempt_at = now() WHERE delivered_at IS NULL"
        )
    clock["now"] = minute + timedelta(minutes=1, seconds=1)
    await sender.deliver_due()
    await sender.deliver_due()
    events = fake.bodies("/pagerduty")
    digest_key = f"pagerduty/digest/{minute.strftime('%Y-%m-%dT%H:%M')}Z"
    pages = [e for e in events if e["dedup_key"] != digest_key]
    digests = [e for e in events if e["dedup_key"] == digest_key]
    assert len(pages) == 5 and len(digests) == 1
    summary = digests[0]["payload"]["summary"]
    assert summary.startswith("15 more escalations in this minute: ")
    told = set(digests[0]["payload"]["custom_details"]["tickets"].split(","))
    paged = {e["payload"]["custom_details"]["ticket_id"] for e in pages}
    assert told | paged == set(tickets) and not told & paged  # every breach, once
    async with pool.acquire() as conn:
        assert await conn.fetchval(
            "SELECT count(*) FROM sla_monitor.outbox WHERE delivered_at IS NULL"
        ) == 0  # fmt: skip
    await sender.close()


async def test_a_storm_across_sigkills_loses_no_page_and_pages_no_key_twice(
    database_dsn: str, tmp_path: Path
) -> None:
    """A real daemon, SIGKILLed while 20 new breaches meet max_pages_per_minute = 5: every
    breach is paged or told in a digest, and no key pages twice."""
    conn = await asyncpg.connect(database_dsn)
    await conn.execute(REFERENCE_SCHEMA)
    fake = FakePeer()
    server = PeerServer(fake)
    await server.start()
    config = tmp_path / "sla-monitor.toml"
    config.write_text(
        '[daemon]\npoll_interval = "1s"\n'
        '[escalation]\nenabled = true\nretry_initial = "0.2s"\nmax_pages_per_minute = 5\n'
        f'[escalation.channels.pagerduty]\nurl = "{server.url}/pagerduty"\nrouting_key = "k"\n'
        '[[escalation.levels]]\nname = "oncall"\nwhen = "breached"\nchannels = ["pagerduty"]\n'
    )
    rng = random.Random(20261125)

    def start() -> subprocess.Popen[str]:
        return spawn_daemon(database_dsn, free_port(), config)

    async def pending() -> int:
        try:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM sla_monitor.outbox WHERE delivered_at IS NULL"
                )
            )
        except asyncpg.UndefinedTableError:
            return -1

    async def synced() -> bool:
        try:
            return bool(await conn.fetchval("SELECT count(*) FROM sla_monitor.watermarks"))
        except asyncpg.UndefinedTableError:
            return False

    process = start()
    try:
        await until(synced, "the first start's sync", seconds=60)  # on an empty helpdesk
        created = datetime.now(UTC) - timedelta(hours=2)
        rows = await conn.fetch(
            "INSERT INTO helpdesk.tickets (subject, created_at) "
            "SELECT 'storm ' || n, $1 FROM generate_series(1, 20) n RETURNING id",
            created,
        )
        tickets = {str(row["id"]) for row in rows}
        for _ in range(3):
            await asyncio.sleep(rng.uniform(0.3, 1.5))
            process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(process.wait)
            process = start()

        def told() -> set[str]:
            paged = {
                e["payload"]["custom_details"]["ticket_id"]
                for e in fake.bodies("/pagerduty")
                if "/digest/" not in e["dedup_key"]
            }
            digested = {
                ticket
                for e in fake.bodies("/pagerduty")
                if "/digest/" in e["dedup_key"]
                for ticket in e["payload"]["custom_details"]["tickets"].split(",")
            }
            return paged | digested

        async def done() -> bool:
            return told() >= tickets and await pending() == 0

        await until(done, "every breach paged or digested", seconds=150)
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 10)
        await server.stop()
    assert max(fake.pages.values()) == 1
    assert any("/digest/" in key for key in fake.pages)
    await conn.close()

"""Crash safety: SIGKILL the daemon again and again while it escalates a few hundred tickets and
then resolves them; nothing is lost and nobody is paged twice."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from sla_monitor.sources.sql import REFERENCE_SCHEMA
from tests.integration.peers import FakePeer, PeerServer, free_port, until
from tests.integration.test_cli import spawn_daemon
from tests.integration.test_outbox_channels import ScriptedPeer

pytestmark = pytest.mark.integration

TICKETS = 300
LEVELS = ("team", "oncall", "manager")
KILLS_PER_PHASE = 8


def config(tmp_path: Path, peer_url: str) -> Path:
    path = tmp_path / "sla-monitor.toml"
    levels = "\n".join(
        f'[[escalation.levels]]\nname = "{level}"\nwhen = "{when}"\nchannels = ["pagerduty"]\n'
        for level, when in zip(LEVELS, ("at_risk", "breached", "overdue"), strict=True)
    )
    path.write_text(
        '[daemon]\npoll_interval = "1s"\n'
        # Every escalation paged on its own: a first start's backlog, and no storm guard.
        f'[escalation]\nenabled = true\nretry_initial = "0.2s"\nbacklog = "page"\n'
        "max_pages_per_minute = 100000\n"
        f'[escalation.channels.pagerduty]\nurl = "{peer_url}/pagerduty"\n'
        'routing_key = "k"\n' + levels
    )
    return path


async def pending(conn: asyncpg.Connection) -> int:
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM sla_monitor.outbox WHERE delivered_at IS NULL"
            )
        )
    except asyncpg.UndefinedTableError:
        return -1


async def test_sigkill_at_many_points_loses_nothing_and_pages_once(
    database_dsn: str, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(database_dsn)
    await conn.execute(REFERENCE_SCHEMA)
    created = datetime.now(UTC) - timedelta(hours=3)  # breached and overdue: 3 levels each
    await conn.executemany(
        "INSERT INTO helpdesk.tickets (subject, created_at) VALUES ($1, $2)",
        [(f"ticket {n}", created) for n in range(TICKETS)],
    )
    ids = [str(r["id"]) for r in await conn.fetch("SELECT id FROM helpdesk.tickets")]
    expected = {f"helpdesk/{t}/first_response/{level}" for t in ids for level in LEVELS}

    fake = FakePeer()
    peer = PeerServer(fake)
    await peer.start()
    settings = config(tmp_path, peer.url)
    rng = random.Random(20261122)
    kills = 0

    def start() -> subprocess.Popen[str]:
        return spawn_daemon(database_dsn, free_port(), settings)

    async def crash_repeatedly() -> None:
        nonlocal kills
        for _ in range(KILLS_PER_PHASE):
            process = start()
            # Somewhere in start-up, sync, recording or mid-delivery.
            await asyncio.sleep(rng.uniform(0.4, 2.5))
            process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(process.wait)
            kills += 1

    async def run_until_drained(what: str) -> None:
        process = start()
        try:
            await until(lambda: what_is_done(what), what, seconds=120)
        finally:
            process.terminate()
            await asyncio.to_thread(process.wait, 10)

    async def what_is_done(what: str) -> bool:
        if what == "every escalation delivered":
            return set(fake.triggers) == expected and await pending(conn) == 0
        return set(fake.resolves) == expected and await pending(conn) == 0

    try:
        await crash_repeatedly()
        await run_until_drained("every escalation delivered")
        await conn.execute("UPDATE helpdesk.tickets SET status = 'resolved'")
        await crash_repeatedly()
        await run_until_drained("every escalation resolved")
    finally:
        await peer.stop()

    repeats = sum(fake.triggers.values()) + sum(fake.resolves.values()) - 2 * len(expected)
    print(
        f"\n{kills} SIGKILLs, {len(expected)} escalations, "
        f"{len(fake.requests)} requests, {repeats} repeated requests (absorbed by dedup_key)"
    )
    # Nothing lost: every escalation triggered and resolved; nobody paged twice.
    assert set(fake.pages) == expected
    assert max(fake.pages.values()) == 1
    assert fake.open_incidents == set()
    rows = await conn.fetch(
        "SELECT count(*) AS n, count(delivered_at) AS delivered FROM sla_monitor.outbox"
    )
    assert rows[0]["n"] == rows[0]["delivered"] == 2 * len(expected)
    await conn.close()


async def test_sigterm_while_a_channel_hangs_stops_cleanly_and_keeps_the_row(
    database_dsn: str, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(database_dsn)
    await conn.execute(REFERENCE_SCHEMA)
    await conn.execute(
        "INSERT INTO helpdesk.tickets (subject, created_at) VALUES ('late', $1)",
        datetime.now(UTC) - timedelta(minutes=55),  # at risk: one escalation
    )
    peer = ScriptedPeer(answer=lambda path, body: "hang")
    await peer.start()
    settings = tmp_path / "sla-monitor.toml"
    settings.write_text(
        '[daemon]\npoll_interval = "1s"\nshutdown_timeout = "2s"\n'
        '[escalation]\nenabled = true\ntimeout = "60s"\nbacklog = "page"\n'
        f'[escalation.channels.slack]\nwebhook_url = "{peer.url}/slack"\n'
        '[[escalation.levels]]\nname = "team"\nwhen = "at_risk"\nchannels = ["slack"]\n'
    )
    process = spawn_daemon(database_dsn, free_port(), settings, capture=True)
    try:
        await until(lambda: peer.requests, "the send hanging", seconds=30)
        stopped = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.to_thread(process.communicate, timeout=10)
        elapsed = time.monotonic() - stopped
    finally:
        if process.poll() is None:
            process.kill()
            await asyncio.to_thread(process.wait)
        await peer.stop()
    assert process.returncode == 0, stderr
    assert elapsed < 2 + 2
    assert "Traceback" not in stderr
    row = await conn.fetchrow("SELECT delivered_at, attempts FROM sla_monitor.outbox")
    assert row["delivered_at"] is None and row["attempts"] == 0  # rolled back: sent next time
    await conn.close()

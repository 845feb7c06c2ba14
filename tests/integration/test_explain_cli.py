"""`sla-monitor explain TICKET`: one ticket read from a real helpdesk database, explained."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from sla_monitor.sources.sql import REFERENCE_SCHEMA
from tests.integration.helpdesk import make_daemon
from tests.integration.test_cli import sla_monitor

pytestmark = pytest.mark.integration
NOW = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)


async def _helpdesk(dsn: str) -> tuple[str, str]:
    """A ticket paused in `pending` for an hour, and one resolved; their ids."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(REFERENCE_SCHEMA)
        created = NOW - timedelta(hours=3)
        paused = await conn.fetchval(
            "INSERT INTO helpdesk.tickets (subject, status, created_at, updated_at) "
            "VALUES ('<script>alert(1)</script>', 'open', $1, $1) RETURNING id::text",
            created,
        )
        resolved = await conn.fetchval(
            "INSERT INTO helpdesk.tickets (subject, status, created_at, updated_at) "
            "VALUES ('done', 'resolved', $1, $1) RETURNING id::text",
            created,
        )
        for ticket_id, minutes, value, old in (
            (paused, 60, "pending", "new"),
            (paused, 120, "open", "pending"),
            (resolved, 30, "resolved", "new"),
        ):
            await conn.execute(
                "INSERT INTO helpdesk.ticket_events (ticket_id, kind, new_value, old_value,"
                " created_at) VALUES ($1, 'status_change', $2, $3, $4)",
                int(ticket_id),
                value,
                old,
                created + timedelta(minutes=minutes),
            )
    finally:
        await conn.close()
    return paused, resolved


async def test_explain_prints_counted_and_paused_time(database_dsn: str) -> None:
    paused, _ = await _helpdesk(database_dsn)
    env = {"SLA_MONITOR_DATABASE__DSN": database_dsn}
    result = sla_monitor("explain", paused, "--now", NOW.isoformat(), env=env)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert f"Ticket {paused}: <script>alert(1)</script>" in text
    assert "Policy 'default': no rule matched" in text
    assert "Calendar '24x7'" in text
    assert (
        "not counted 2026-03-02T11:00:00+00:00 .. 2026-03-02T12:00:00+00:00: paused by "
        "status 'pending'" in text
    )
    assert "first_response: BREACHED" in text

    as_json = sla_monitor("explain", paused, "--now", NOW.isoformat(), "--json", env=env)
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["ticket_id"] == paused and data["policy"] == "default"
    resolution = next(c for c in data["clocks"] if c["clock"] == "resolution")
    assert resolution["elapsed_business_seconds"] == 2 * 3600
    assert resolution["wall_seconds"] == 3 * 3600
    assert [s["counted"] for s in resolution["spans"]] == [True, False, True]


async def test_explain_a_resolved_ticket(database_dsn: str) -> None:
    _, resolved = await _helpdesk(database_dsn)
    env = {"SLA_MONITOR_DATABASE__DSN": database_dsn}
    result = sla_monitor("explain", resolved, "--now", NOW.isoformat(), "--json", env=env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["category"] == "resolved"
    resolution = next(c for c in data["clocks"] if c["clock"] == "resolution")
    assert resolution["state"] == "met"
    assert resolution["stopped_at"] == (NOW - timedelta(hours=2, minutes=30)).isoformat()


async def test_explain_an_unknown_ticket_exits_1_with_one_line(database_dsn: str) -> None:
    await _helpdesk(database_dsn)
    result = sla_monitor("explain", "999999", env={"SLA_MONITOR_DATABASE__DSN": database_dsn})
    assert result.returncode == 1
    assert result.stderr.strip() == "sla-monitor: no ticket '999999' in the source"


async def _record(dsn: str, now: datetime) -> None:
    """The daemon's first sync at ``now``, in process: it records the open tickets' ledger."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        daemon = make_daemon(pool, lambda: now)
        await daemon.store.migrate()
        await daemon.poll_once()
    finally:
        await pool.close()


async def test_explain_shows_the_ledger_so_far(database_dsn: str) -> None:
    paused, _ = await _helpdesk(database_dsn)
    env = {"SLA_MONITOR_DATABASE__DSN": database_dsn}
    before = sla_monitor("explain", paused, "--now", NOW.isoformat(), "--json", env=env)
    assert before.returncode == 0, before.stderr
    assert json.loads(before.stdout)["ledger"] is None  # the daemon's schema does not exist yet

    await _record(database_dsn, NOW)
    as_json = sla_monitor("explain", paused, "--now", NOW.isoformat(), "--json", env=env)
    assert as_json.returncode == 0, as_json.stderr
    ledger = json.loads(as_json.stdout)["ledger"]
    first = [(e["kind"], e["at"]) for e in ledger if e["clock"] == "first_response"]
    created = NOW - timedelta(hours=3)
    assert first == [
        ("started", created.isoformat()),
        ("at_risk", (created + timedelta(minutes=45)).isoformat()),
        # The hour's target runs out exactly as the pause begins: breached, then paused.
        ("breached", (created + timedelta(minutes=60)).isoformat()),
        ("paused", (created + timedelta(minutes=60)).isoformat()),
        ("resumed", (created + timedelta(minutes=120)).isoformat()),
    ]
    breached = next(e for e in ledger if e["kind"] == "breached")
    assert breached["elapsed_seconds"] == 3600 and breached["policy"] == "default"
    assert breached["calendar"] == "24x7" and breached["priority"] == "normal"

    text = sla_monitor("explain", paused, "--now", NOW.isoformat(), env=env)
    assert text.returncode == 0, text.stderr
    assert "Ledger (as recorded):" in text.stdout
    assert (
        f"  {(created + timedelta(minutes=60)).isoformat()}  first_response: paused, "
        "1h 00m counted (policy 'default', '24x7', priority 'normal')" in text.stdout
    )
    # As of an earlier instant: the ledger as it stood then.
    earlier = (created + timedelta(minutes=50)).isoformat()
    then = sla_monitor("explain", paused, "--now", earlier, "--json", env=env)
    kinds = {(e["clock"], e["kind"]) for e in json.loads(then.stdout)["ledger"]}
    assert ("first_response", "at_risk") in kinds and ("first_response", "paused") not in kinds

"""`sla-monitor explain TICKET`: one ticket read from a real helpdesk database, explained."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from sla_monitor.sources.sql import REFERENCE_SCHEMA
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

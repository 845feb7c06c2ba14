"""Reports read the daemon's own schema: outcomes recorded with the customer, and the
`sla-monitor report` command over them."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import generate_latest

from sla_monitor.engine import PolicySet
from sla_monitor.http import make_app, openapi_document
from sla_monitor.metrics import Metrics
from sla_monitor.records import OwedUpdateRow, OwedUpdates
from sla_monitor.report import ChurnRules
from sla_monitor.sources.sql import REFERENCE_SCHEMA
from sla_monitor.store import StateStore
from sla_monitor.store.outbox import OutboxStore
from sla_monitor.store.report import ChurnWatch, ReportStore
from sla_monitor.tracker import Tracker
from tests.integration.helpdesk import FakeClock, make_daemon
from tests.integration.peers import free_port
from tests.integration.test_api import validate
from tests.integration.test_cli import sla_monitor, spawn_daemon

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


async def test_the_customer_migrations_backfill_nothing(pool: asyncpg.Pool) -> None:
    daemon = make_daemon(pool, FakeClock(0))
    await daemon.store.migrate()
    async with pool.acquire() as conn:
        nullable = await conn.fetch(
            "SELECT table_name, column_name, is_nullable FROM information_schema.columns"
            " WHERE table_schema = 'sla_monitor' AND column_name IN"
            " ('customer', 'organization', 'policy', 'queue', 'priority')"
            " AND table_name IN ('breaches', 'completions', 'customer_updates')"
            " AND (table_name = 'customer_updates' OR column_name NOT IN ('queue', 'priority'))"
            " ORDER BY 1, 2"
        )
    assert [tuple(r) for r in nullable] == [
        (table, column, "YES")
        for table in ("breaches", "completions")
        for column in ("customer", "organization", "policy")
    ] + [
        ("customer_updates", column, "YES")
        for column in ("customer", "organization", "policy", "priority", "queue")
    ]


async def recorded_outcomes(pool, helpdesk) -> tuple[str, str]:
    """Two Acme tickets: one answered in 5 minutes and resolved, one never answered."""
    answered = await helpdesk.ticket(created=0)
    await helpdesk.reply(answered, 5)
    await helpdesk.set_status(answered, 30, "resolved")
    late = await helpdesk.ticket(created=0)
    await helpdesk.conn.execute(
        "UPDATE helpdesk.tickets SET requester_email = 'ann@acme.example', organization = 'Acme'"
    )
    daemon = make_daemon(pool, FakeClock(90))
    await daemon.store.migrate()
    await daemon.poll_once()
    await daemon.poll_once()
    return answered, late


async def test_the_report_command_reads_the_recorded_outcomes(pool, helpdesk, database_dsn) -> None:
    _, late = await recorded_outcomes(pool, helpdesk)
    env = {"SLA_MONITOR_DATABASE__DSN": database_dsn, "SLA_MONITOR_CHURN__MIN_BREACHES": "1"}
    asked = ["report", "--from", "2026-03-01", "--to", "2026-03-31"]
    asked += ["--by", "organization", "--now", "2026-04-01T00:00:00+00:00"]
    result = sla_monitor(*asked, "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    async with pool.acquire() as conn:
        met, total = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE met), count(*) FROM sla_monitor.completions"
        )
    [acme] = report["groups"]
    assert acme["key"] == {"organization": "Acme"}
    assert (acme["met"], acme["completions"]) == (met, total)
    assert acme["breaches_by_clock"] == {"first_response": 1}
    # Five minutes of business time to the first response (09:00 on a Monday).
    assert acme["first_response_seconds"]["median"] == 300.0
    # At risk under min_breaches = 1: the customer and the organization, with the ticket.
    risks = {(r["kind"], r["name"]): r["reasons"] for r in report["at_risk"]}
    assert risks[("organization", "Acme")][0]["tickets"] == [late]
    assert risks[("customer", "ann@acme.example")][0]["reason"] == "breaches"

    table = sla_monitor(*asked, env=env)
    assert table.returncode == 0, table.stderr
    assert "organization" in table.stdout and "Acme" in table.stdout
    print(table.stdout)  # the README's excerpt

    empty = sla_monitor("report", "--period", "2025-01", "--now", "2026-04-01T00:00:00Z", env=env)
    assert empty.returncode == 0, empty.stderr
    assert "note: no completions or breaches recorded in this period" in empty.stdout


async def test_the_report_counts_updates_owed_and_sent(pool, database_dsn) -> None:
    store = StateStore(pool, "sla_monitor", "helpdesk")
    await store.migrate()
    owed_at = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)

    def owed(ticket: str, organization: str) -> OwedUpdateRow:
        key = f"helpdesk/{ticket}/update/{owed_at.isoformat()}"
        window = owed_at - timedelta(hours=4)
        return OwedUpdateRow(
            key,
            ticket,
            window,
            "en",
            "News",
            owed_at,
            queue="support",
            priority="normal",
            policy="default",
            organization=organization,
        )

    acme, globex = owed("1", "Acme"), owed("2", "Globex")
    recorded = await store.record([], None, updates=OwedUpdates([acme, globex], 3, "helpdesk"))
    assert [(m.dedup_key, m.action) for m in recorded.outbox] == [
        (acme.idempotency_key, "update"),
        (globex.idempotency_key, "update"),
    ]
    # As the sender does: Acme's update is delivered; Globex's ticket was resolved meanwhile,
    # its update is cancelled (marked delivered too, but never sent).
    outbox = OutboxStore(pool, "sla_monitor")
    async with outbox.claim("claim_any") as claimed:
        assert claimed is not None and claimed.row.dedup_key == acme.idempotency_key
        await claimed.delivered()
    async with outbox.claim("claim_any") as claimed:
        assert claimed is not None and claimed.row.dedup_key == globex.idempotency_key
        await claimed.cancel("cancelled: ticket no longer owes an update")
    async with pool.acquire() as conn:
        # A row an older version recorded, without the groupings; never delivered. And one of
        # another period.
        await conn.execute(
            "INSERT INTO sla_monitor.customer_updates (idempotency_key, source, ticket_id,"
            " window_start, language, body, owed_at) VALUES"
            " ('helpdesk/3/update/x', 'helpdesk', '3', $1, 'en', 'News', $1),"
            " ('helpdesk/4/update/x', 'helpdesk', '4', $2, 'en', 'News', $2)",
            owed_at,
            owed_at + timedelta(days=30),
        )
    env = {"SLA_MONITOR_DATABASE__DSN": database_dsn}
    asked = ["report", "--from", "2026-03-01", "--to", "2026-03-31", "--by", "organization"]
    result = sla_monitor(*asked, "--now", "2026-04-01T00:00:00+00:00", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    counted = ("tickets", "completions", "updates_owed", "updates_sent")
    groups = {
        g["key"]["organization"]: tuple(g[name] for name in counted)
        for g in json.loads(result.stdout)["groups"]
    }
    assert groups == {"(unknown)": (0, 0, 1, 0), "Acme": (0, 0, 1, 1), "Globex": (0, 0, 1, 0)}


async def test_the_churn_gauge_counts_per_reason_never_per_customer(pool, helpdesk) -> None:
    await recorded_outcomes(pool, helpdesk)
    metrics = Metrics(Tracker(PolicySet()))
    rules = ChurnRules(window=90 * 86400, min_breaches=1, min_compliance=0.8, max_wait=600)
    now = datetime(2026, 4, 1, tzinfo=UTC)
    watch = ChurnWatch(
        ReportStore(pool, "sla_monitor", "helpdesk"), rules, metrics, 300, lambda: now
    )
    # One breach (min 1) for the customer and for Acme; the resolution took 30 minutes, over
    # max_wait's 10: both again. Compliance is 100%.
    assert await watch.count() == {"breaches": 2, "compliance": 0, "max_wait": 2}
    exported = generate_latest(metrics.registry).decode()
    assert 'sla_monitor_customers_at_risk{reason="breaches"} 2.0' in exported
    assert "acme" not in exported.lower()
    # A window that has passed them by: nobody at risk.
    watch.clock = lambda: now + timedelta(days=365)
    assert await watch.count() == {"breaches": 0, "compliance": 0, "max_wait": 0}


async def test_the_served_daemon_exports_the_churn_gauge(database_dsn: str) -> None:
    conn = await asyncpg.connect(database_dsn)
    await conn.execute(REFERENCE_SCHEMA)
    await conn.close()
    port = free_port()
    process = spawn_daemon(database_dsn, port)
    try:
        deadline = time.monotonic() + 30
        exported = ""
        while "sla_monitor_customers_at_risk{" not in exported:
            assert time.monotonic() < deadline, exported
            assert process.poll() is None
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    exported = r.read().decode()
            except OSError:
                await asyncio.sleep(0.2)  # not listening yet
        assert 'sla_monitor_customers_at_risk{reason="max_wait"} 0.0' in exported
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_the_api_answers_the_last_count_of_customers_at_risk(pool, helpdesk) -> None:
    _, late = await recorded_outcomes(pool, helpdesk)
    daemon = make_daemon(pool, FakeClock(90))
    rules = ChurnRules(window=90 * 86400, min_breaches=1, min_compliance=0.8, max_wait=86400)
    now = datetime(2026, 4, 1, tzinfo=UTC)
    store = ReportStore(pool, "sla_monitor", "helpdesk")
    watch = ChurnWatch(store, rules, daemon.metrics, 300, lambda: now)
    document = openapi_document()
    async with TestClient(TestServer(make_app(daemon, at_risk=lambda: watch.latest))) as client:
        before = await client.get("/api/v1/customers/at-risk")
        assert before.status == 503
        assert (await before.json())["error"] == "not_counted"
        await watch.count()
        response = await client.get("/api/v1/customers/at-risk")
        assert response.status == 200
        body = await response.json()
        operation = document["paths"]["/api/v1/customers/at-risk"]["get"]
        validate(
            body, operation["responses"]["200"]["content"]["application/json"]["schema"], document
        )
        assert body["counts"] == {"breaches": 2, "compliance": 0, "max_wait": 0}
        assert [(e["kind"], e["name"]) for e in body["at_risk"]] == [
            ("customer", "ann@acme.example"),
            ("organization", "Acme"),
        ]
        assert body["at_risk"][1]["reasons"][0]["tickets"] == [late]
        assert (await client.get("/api/v1/customers/at-risk?x=1")).status == 400

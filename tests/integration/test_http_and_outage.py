"""The HTTP endpoints, and a database outage that the daemon reports and recovers from."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer

from sla_monitor.daemon import Daemon
from sla_monitor.http import make_app
from tests.integration.helpdesk import FakeClock, Helpdesk, make_daemon, open_gauge, sample
from tests.integration.proxy import OutageProxy

pytestmark = pytest.mark.integration


@pytest.fixture
async def proxy(database_dsn: str) -> AsyncIterator[tuple[OutageProxy, str]]:
    parts = urlsplit(database_dsn)
    host = parse_qs(parts.query).get("host", [parts.hostname or "127.0.0.1"])[0]
    proxy = OutageProxy(host, parts.port or 5432)
    await proxy.start()
    user = parts.username or "postgres"
    try:
        yield proxy, f"postgresql://{user}@127.0.0.1:{proxy.port}{parts.path}"
    finally:
        await proxy.close()


@pytest.fixture
async def daemon_via_proxy(proxy, database_dsn) -> AsyncIterator[tuple[Daemon, OutageProxy]]:
    outage, dsn = proxy
    conn = await asyncpg.connect(database_dsn)
    helpdesk = await Helpdesk.create(conn)
    await helpdesk.ticket(created=0)
    await conn.close()
    pool = await asyncpg.create_pool(dsn, min_size=0, max_size=2)
    daemon = make_daemon(pool, FakeClock(10))
    await daemon.store.migrate()
    try:
        yield daemon, outage
    finally:
        outage.restore()
        await pool.close()


async def test_endpoints_report_health_readiness_and_metrics(daemon_via_proxy) -> None:
    daemon, _ = daemon_via_proxy
    async with TestClient(TestServer(make_app(daemon))) as client:
        assert (await client.get("/healthz")).status == 200
        not_ready = await client.get("/readyz")
        assert not_ready.status == 503
        await daemon.cycle()
        ready = await client.get("/readyz")
        assert ready.status == 200
        assert (await ready.json())["tracked"] == 1
        metrics = await client.get("/metrics")
        assert metrics.status == 200
        assert metrics.content_type == "text/plain"
        text = await metrics.text()
        assert "sla_monitor_source_up 1.0" in text
        assert (
            'sla_monitor_open_tickets{clock="first_response",priority="normal",'
            'queue="support",state="ok"} 1.0'
        ) in text
        assert "ticket_id" not in text


async def test_outage_marks_source_down_and_recovers_by_itself(daemon_via_proxy) -> None:
    daemon, outage = daemon_via_proxy
    async with TestClient(TestServer(make_app(daemon))) as client:
        await daemon.cycle()
        assert sample(daemon, "sla_monitor_source_up") == 1

        await outage.cut()
        daemon.request_poll()
        await daemon.cycle()
        assert sample(daemon, "sla_monitor_source_up") == 0
        assert sample(daemon, "sla_monitor_poll_errors_total", kind="database") == 1
        response = await client.get("/readyz")
        assert response.status == 503
        assert (await response.json())["error"]

        outage.restore()
        daemon.request_poll()
        await daemon.cycle()
        assert sample(daemon, "sla_monitor_source_up") == 1
        assert (await client.get("/readyz")).status == 200
        assert sample(daemon, "sla_monitor_tracked_tickets") == 1


async def test_an_outage_is_a_few_lines_and_due_timers_wait_for_the_backoff(
    daemon_via_proxy,
) -> None:
    daemon, outage = daemon_via_proxy
    await daemon.cycle()  # the ticket is 10 min old: at risk at 45, breached at 60
    await outage.cut()
    daemon.request_poll()
    with structlog.testing.capture_logs() as logs:
        await daemon.cycle()
        # Timers fall due during the backoff: judged in memory, no database access.
        for minutes in range(40, 80, 2):
            daemon.clock.set(minutes)
            await daemon.cycle()
        assert sample(daemon, "sla_monitor_poll_errors_total", kind="database") == 1
        assert open_gauge(daemon, "first_response", "breached") == 1
        for _ in range(30):  # thirty more failed polls
            daemon.request_poll()
            await daemon.cycle()
        outage.restore()
        daemon.request_poll()
        await daemon.cycle()
    assert sample(daemon, "sla_monitor_poll_errors_total", kind="database") == 31
    failed = [line for line in logs if line["event"] == "poll_failed"]
    assert [line["failures"] for line in failed] == [1, 2, 4, 8, 16]
    assert [line["failed_polls"] for line in logs if line["event"] == "poll_recovered"] == [31]
    # What the timers judged during the outage is recorded once the database is back.
    assert (
        sample(
            daemon,
            "sla_monitor_breaches_total",
            clock="first_response",
            priority="normal",
            queue="support",
        )
        == 1
    )

"""Escalations end to end: a real Alertmanager, fake PagerDuty/Slack/webhook peers, a real
PostgreSQL outbox."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest

from sla_monitor.app import build_sender
from sla_monitor.config import Settings
from sla_monitor.daemon import Daemon
from sla_monitor.daemon_options import Hooks
from sla_monitor.outbox import OutboxSender
from tests.integration.helpdesk import FakeClock, make_daemon, sample
from tests.integration.peers import (
    ALERTMANAGER_BINARIES,
    Alertmanager,
    FakePeer,
    PeerServer,
    require_binary,
)

pytestmark = pytest.mark.integration
SECRET = "s3cret-for-hmac"


@pytest.fixture(scope="module")
def alertmanager() -> Iterator[Alertmanager]:
    server = Alertmanager(require_binary(ALERTMANAGER_BINARIES, "prometheus-alertmanager"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def peer() -> AsyncIterator[tuple[FakePeer, PeerServer]]:
    fake = FakePeer()
    server = PeerServer(fake)
    await server.start()
    try:
        yield fake, server
    finally:
        await server.stop()


def escalation_settings(channels: dict[str, Any], level_channels: list[str]) -> Settings:
    return Settings(
        escalation={
            "enabled": True,
            "ticket_url": "https://helpdesk.example/t/{ticket_id}",
            "backlog": "page",  # these tests page tickets already late at the first start
            "retry_initial": 0,  # a failed delivery is due again at once: no waiting in tests
            "channels": channels,
            "levels": [
                {"name": "team", "when": "at_risk", "channels": level_channels},
                {
                    "name": "oncall",
                    "when": "breached",
                    "channels": level_channels,
                    "severity": "critical",
                },
                {
                    "name": "manager",
                    "when": "overdue",
                    "channels": level_channels,
                    "severity": "critical",
                    "team": "management",
                },
            ],
        }
    )


async def started(
    pool: asyncpg.Pool, clock: FakeClock, settings: Settings
) -> tuple[Daemon, OutboxSender]:
    daemon = make_daemon(pool, clock, settings)
    await daemon.store.migrate()
    return daemon, build_sender(settings, daemon.tracker, daemon.metrics, pool)


async def outbox(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return await conn.fetch(
            "SELECT dedup_key, action, channel, delivered_at, attempts "
            "FROM sla_monitor.outbox ORDER BY id"
        )


async def test_alertmanager_receives_groups_and_resolves(pool, helpdesk, alertmanager) -> None:
    late = await helpdesk.ticket(created=0, queue="hosting", subject="Server on fire")
    await helpdesk.ticket(created=0, queue="hosting", priority="high")
    settings = escalation_settings({"alertmanager": {"url": alertmanager.url}}, ["alertmanager"])
    clock = FakeClock(70)
    daemon, sender = await started(pool, clock, settings)
    try:
        await daemon.poll_once()
        assert await sender.deliver_due() == 4  # team + oncall for each ticket
        alerts = alertmanager.alerts(ticket_id=late)
        assert {a["labels"]["level"] for a in alerts} == {"team", "oncall"}
        oncall = next(a for a in alerts if a["labels"]["level"] == "oncall")
        assert (
            oncall["labels"].items()
            >= {
                "alertname": "SLABreached",
                "clock": "first_response",
                "severity": "critical",
                "priority": "normal",
                "queue": "hosting",
                "team": "support",
                "source": "helpdesk",
            }.items()
        )
        assert oncall["annotations"]["ticket_url"] == f"https://helpdesk.example/t/{late}"
        assert oncall["annotations"]["subject"] == "Server on fire"
        assert oncall["annotations"]["time_over"] == "10m"
        assert "Server on fire" in oncall["annotations"]["summary"]
        assert oncall["status"]["state"] == "active"
        groups = alertmanager.get("/api/v2/alerts/groups")
        breached = [
            g for g in groups if g["labels"] == {"alertname": "SLABreached", "queue": "hosting"}
        ]
        assert len(breached) == 1 and len(breached[0]["alerts"]) == 2

        # Re-sending keeps them alive without new outbox rows.
        assert await sender.resend_active() == 4
        assert len(await outbox(pool)) == 4

        await helpdesk.reply(late, 75)
        clock.set(80)
        await daemon.poll_once()
        assert await sender.deliver_due() == 2  # the two resolves
        assert alertmanager.alerts(ticket_id=late) == []
        assert len(alertmanager.alerts(level="oncall", queue="hosting")) == 1
        assert (
            sample(
                daemon,
                "sla_monitor_escalations_total",
                level="oncall",
                channel="alertmanager",
                result="delivered",
            )
            == 3
        )
        assert sample(daemon, "sla_monitor_outbox_pending") == 0
    finally:
        await sender.close()


async def test_pagerduty_slack_and_signed_webhook(pool, helpdesk, peer) -> None:
    fake, server = peer
    ticket = await helpdesk.ticket(created=0, subject="DNS down")
    settings = escalation_settings(
        {
            "pagerduty": {"url": f"{server.url}/pagerduty", "routing_key": "R0UT1NG"},
            "slack": {"webhook_url": f"{server.url}/slack"},
            "webhook": {"url": f"{server.url}/hook", "secret": SECRET},
        },
        ["pagerduty", "slack", "webhook"],
    )
    clock = FakeClock(61)
    daemon, sender = await started(pool, clock, settings)
    try:
        await daemon.poll_once()
        assert await sender.deliver_due() == 6
        await helpdesk.set_status(ticket, 62, "resolved")
        clock.set(63)
        await daemon.poll_once()
        assert await sender.deliver_due() == 6
    finally:
        await sender.close()

    events = fake.bodies("/pagerduty")
    assert [(e["event_action"], e["dedup_key"]) for e in events] == [
        ("trigger", f"helpdesk/{ticket}/first_response/team"),
        ("trigger", f"helpdesk/{ticket}/first_response/oncall"),
        ("resolve", f"helpdesk/{ticket}/first_response/team"),
        ("resolve", f"helpdesk/{ticket}/first_response/oncall"),
    ]
    assert events[1]["routing_key"] == "R0UT1NG"
    assert events[1]["payload"]["severity"] == "critical"
    assert "DNS down" in events[1]["payload"]["summary"]
    assert events[1]["links"][0]["href"] == f"https://helpdesk.example/t/{ticket}"

    texts = [m["text"] for m in fake.bodies("/slack")]
    assert texts[0].startswith(":rotating_light: Ticket") and "DNS down" in texts[0]
    assert texts[2].startswith(":white_check_mark: Resolved: Ticket")

    hooks = [(h, b) for p, h, b in fake.requests if p == "/hook"]
    assert len(hooks) == 4
    for headers, body in hooks:
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-SLA-Monitor-Signature"] == expected
        payload = json.loads(body)
        assert headers["X-SLA-Monitor-Delivery"] == f"{payload['dedup_key']}/{payload['action']}"


async def test_a_channel_down_for_a_while_gets_everything_once_back(pool, helpdesk, peer) -> None:
    fake, server = peer
    tickets = [await helpdesk.ticket(created=0) for _ in range(5)]
    settings = escalation_settings(
        {"pagerduty": {"url": f"{server.url}/pagerduty", "routing_key": "k"}}, ["pagerduty"]
    )
    clock = FakeClock(130)  # team, oncall and manager for each
    daemon, sender = await started(pool, clock, settings)
    try:
        await daemon.poll_once()
        fake.down = True
        for _ in range(3):
            assert await sender.deliver_one()
        assert fake.requests == []
        assert (
            sample(
                daemon,
                "sla_monitor_escalations_total",
                level="team",
                channel="pagerduty",
                result="failed",
            )
            >= 1
        )
        await sender.export_backlog()
        assert sample(daemon, "sla_monitor_outbox_pending") == 15
        rows = await outbox(pool)
        assert sum(r["attempts"] for r in rows) == 3

        fake.down = False
        assert await sender.deliver_due() == 15
    finally:
        await sender.close()
    expected = {
        f"helpdesk/{t}/first_response/{level}"
        for t in tickets
        for level in ("team", "oncall", "manager")
    }
    assert set(fake.pages) == expected
    assert set(fake.pages.values()) == {1}
    assert sample(daemon, "sla_monitor_outbox_pending") == 0


async def test_escalation_fires_at_the_deadline_without_a_poll(pool, helpdesk, peer) -> None:
    _, server = peer
    await helpdesk.ticket(created=0)
    settings = escalation_settings(
        {"pagerduty": {"url": f"{server.url}/pagerduty", "routing_key": "k"}}, ["pagerduty"]
    )
    clock = FakeClock(50)
    daemon, sender = await started(pool, clock, settings)
    woken: list[bool] = []
    daemon.hooks = Hooks(on_outbox=lambda: woken.append(True))
    try:
        await daemon.poll_once()
        assert [r["dedup_key"].rsplit("/", 1)[1] for r in await outbox(pool)] == ["team"]
        due = daemon.tracker.next_due()
        # The 1 h deadline itself: a clock still running at its deadline is breached there.
        assert due == clock.now.replace(minute=0, hour=10)
        clock.now = due
        await daemon.refresh_due()
        assert woken == [True, True]
        assert [r["dedup_key"].rsplit("/", 1)[1] for r in await outbox(pool)] == ["team", "oncall"]
    finally:
        await sender.close()


async def test_a_restart_never_escalates_twice(pool, helpdesk, peer) -> None:
    fake, server = peer
    await helpdesk.ticket(created=0)
    settings = escalation_settings(
        {"pagerduty": {"url": f"{server.url}/pagerduty", "routing_key": "k"}}, ["pagerduty"]
    )
    first, sender = await started(pool, FakeClock(65), settings)
    await first.poll_once()
    await sender.deliver_due()
    await sender.close()
    second, sender = await started(pool, FakeClock(66), settings)
    await second.poll_once()
    assert await sender.deliver_due() == 0
    await sender.close()
    assert len(await outbox(pool)) == 2
    assert sum(fake.pages.values()) == 2


def test_backoff_grows_exponentially_to_its_cap() -> None:
    sender = OutboxSender(None, "sla_monitor", {}, None, retry_initial=1, retry_max=60)  # type: ignore[arg-type]
    for attempts, ceiling in [(0, 1), (1, 2), (3, 8), (5, 32), (6, 60), (20, 60)]:
        delays = [sender.backoff(attempts) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)

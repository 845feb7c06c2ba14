"""Channels are independent: a hanging, failing or refusing channel never delays another; a
channel back from an outage is drained within seconds; errors never quote a channel's secret."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from sla_monitor.app import build_sender, delivery_connections, open_pools
from sla_monitor.config import Settings
from sla_monitor.daemon import Daemon
from sla_monitor.http import make_app
from sla_monitor.outbox import OutboxSender
from tests.integration.helpdesk import FakeClock, make_daemon, sample
from tests.integration.peers import free_port, until

pytestmark = pytest.mark.integration

# An answer: "ok", "hang" (until the peer stops), or an HTTP status.
Answer = str | int


@dataclass
class ScriptedPeer:
    """A fake channel endpoint answering each request with ``answer(path, body)``; records
    the path, the arrival (monotonic) and the body of every request."""

    answer: Callable[[str, bytes], Answer] = lambda path, body: "ok"
    echo: bool = False  # an error answer quotes the request path and body, as some APIs do
    retry_after: str | None = None
    requests: list[tuple[str, float, bytes]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = field(default_factory=free_port)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def arrivals(self, path: str) -> list[float]:
        return [at for p, at, _ in self.requests if p == path]

    async def start(self) -> None:
        async def receive(request: web.Request) -> web.Response:
            body = await request.read()
            self.requests.append((request.path, time.monotonic(), body))
            answer = self.answer(request.path, body)
            if answer == "hang":
                await self.release.wait()
                answer = 503
            if answer == "ok":
                return web.json_response({"status": "success"}, status=202)
            text = f"refused {request.path}: {body.decode()}" if self.echo else "error"
            headers = {"Retry-After": self.retry_after} if self.retry_after else None
            return web.Response(status=int(answer), text=text, headers=headers)

        app = web.Application()
        app.router.add_post("/{path:.*}", receive)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def peer() -> AsyncIterator[ScriptedPeer]:
    fake = ScriptedPeer()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


def channel_settings(channels: dict[str, Any], **escalation: Any) -> Settings:
    return Settings(
        escalation={
            "enabled": True,
            "channels": channels,
            "levels": [{"name": "team", "when": "at_risk", "channels": list(channels)}],
            **escalation,
        }
    )


async def sender_for(
    pool: asyncpg.Pool, settings: Settings, probe_interval: float = 5.0
) -> tuple[Daemon, OutboxSender]:
    daemon = make_daemon(pool, FakeClock(0), settings)
    await daemon.store.migrate()
    sender = build_sender(settings, daemon.tracker, daemon.metrics, pool)
    sender.probe_interval = probe_interval
    return daemon, sender


async def queue(
    pool: asyncpg.Pool, channel: str, key: str, action: str = "trigger", summary: str = "late"
) -> None:
    alert = {
        "labels": {"level": "team", "severity": "critical", "ticket_id": key},
        "annotations": {"summary": summary},
        "startsAt": datetime.now(UTC).isoformat(),
        "dedup_key": key,
    }
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO sla_monitor.outbox (dedup_key, action, channel, payload)"
            " VALUES ($1, $2, $3, $4)",
            key,
            action,
            channel,
            json.dumps(alert),
        )


async def rows(pool: asyncpg.Pool, channel: str | None = None) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return await conn.fetch(
            "SELECT dedup_key, action, channel, attempts, delivered_at, parked_at, last_error,"
            " extract(epoch FROM next_attempt_at - now()) AS due_in"
            " FROM sla_monitor.outbox WHERE $1::text IS NULL OR channel = $1 ORDER BY id",
            channel,
        )


async def delivered(pool: asyncpg.Pool, channel: str) -> int:
    return sum(r["delivered_at"] is not None for r in await rows(pool, channel))


async def delivered_is(pool: asyncpg.Pool, channel: str, count: int) -> bool:
    return await delivered(pool, channel) == count


@pytest.fixture
async def running() -> AsyncIterator[Callable[[OutboxSender], None]]:
    """Starts ``sender.run()``; stops it (cancelling a hanging send) and closes it after."""
    started: list[tuple[OutboxSender, asyncio.Task[None]]] = []

    def start(sender: OutboxSender) -> None:
        started.append((sender, asyncio.create_task(sender.run())))

    yield start
    for sender, task in started:
        sender.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sender.close()


async def test_a_hanging_channel_never_delays_another(pool, peer, running) -> None:
    peer.answer = lambda path, body: "hang" if path == "/slack" else "ok"
    settings = channel_settings(
        {
            "slack": {"webhook_url": f"{peer.url}/slack"},
            "pagerduty": {"url": f"{peer.url}/pagerduty", "routing_key": "k"},
        },
        timeout=5,
    )
    _, sender = await sender_for(pool, settings)
    for n in range(10):  # slack first each time: a serial sender would wait 5 s per slack row
        await queue(pool, "slack", f"key-{n}")
        await queue(pool, "pagerduty", f"key-{n}")
    start = time.monotonic()
    running(sender)
    await until(lambda: len(peer.arrivals("/pagerduty")) == 10, "10 pages", seconds=20)
    latencies = [at - start for at in peer.arrivals("/pagerduty")]
    assert max(latencies) < 2, latencies
    await until(lambda: delivered_is(pool, "pagerduty", 10), "marked delivered", seconds=5)
    assert await delivered(pool, "slack") == 0


async def test_a_channel_back_from_an_outage_is_drained_within_seconds(pool, peer, running) -> None:
    down = True
    peer.answer = lambda path, body: 503 if down else "ok"
    settings = channel_settings(
        {"webhook": {"url": f"{peer.url}/hook", "secret": "s"}}, retry_initial=1, retry_max=300
    )
    daemon, sender = await sender_for(pool, settings, probe_interval=0.3)
    for n in range(20):
        await queue(pool, "webhook", f"key-{n}")
    # The state a long outage leaves: every row failed often, its next attempt minutes away.
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE sla_monitor.outbox SET attempts = 8, next_attempt_at = now() + '200 s'"
        )
    started = time.monotonic()
    running(sender)
    await until(lambda: len(peer.requests) >= 3, "probes while down", seconds=10)
    assert sample(daemon, "sla_monitor_channel_up", channel="webhook") == 0
    probes = len(peer.requests)
    down, recovered = False, time.monotonic()
    # While down, one probe per interval, not every row: the channel is not hammered.
    assert probes <= (recovered - started) / 0.3 + 2
    await until(lambda: len(peer.requests) >= probes + 20, "the backlog", seconds=10)
    assert time.monotonic() - recovered < 3
    await until(lambda: delivered_is(pool, "webhook", 20), "marked delivered", seconds=5)
    assert sample(daemon, "sla_monitor_channel_up", channel="webhook") == 1


async def test_retry_after_is_honoured_while_probing(pool, peer, running) -> None:
    peer.answer = lambda path, body: 429
    peer.retry_after = "30"
    settings = channel_settings(
        {"webhook": {"url": f"{peer.url}/hook", "secret": "s"}}, retry_initial=1, retry_max=60
    )
    _, sender = await sender_for(pool, settings, probe_interval=0.1)
    await queue(pool, "webhook", "key-1")
    await queue(pool, "webhook", "key-2")
    running(sender)
    await until(lambda: _attempted(pool), "the first attempt, rescheduled", seconds=5)
    first = (await rows(pool))[0]
    assert 29 < first["due_in"] <= 30 and first["parked_at"] is None
    # Twenty probe intervals later, still one request: the channel asked for 30 s. (Real time:
    # what is asserted is the absence of requests over it.)
    await asyncio.sleep(2)
    assert len(peer.requests) == 1


async def _attempted(pool: asyncpg.Pool) -> bool:
    return any(r["attempts"] for r in await rows(pool))


async def test_a_refused_channel_is_down_parked_and_blocks_no_other(
    pool, helpdesk, peer, running
) -> None:
    peer.answer = lambda path, body: 401 if path == "/slack" else "ok"
    settings = channel_settings(
        {
            "slack": {"webhook_url": f"{peer.url}/slack"},
            "pagerduty": {"url": f"{peer.url}/pagerduty", "routing_key": "k"},
        },
        retry_initial=0.1,
        retry_max=300,
    )
    daemon, sender = await sender_for(pool, settings, probe_interval=0.1)
    await daemon.poll_once()  # ready: a refused channel must not change that
    for key in ("a", "b"):
        await queue(pool, "slack", key)
        await queue(pool, "pagerduty", key)
    await queue(pool, "slack", "a", "resolve")
    await queue(pool, "pagerduty", "a", "resolve")
    with structlog.testing.capture_logs() as logs:
        running(sender)
        await until(lambda: delivered_is(pool, "pagerduty", 3), "pagerduty delivered", 10)
        await until(lambda: _parked(pool, "slack", 2), "both slack triggers parked", 10)
        # Twenty probe intervals: a parked row is not retried in a loop.
        await asyncio.sleep(2)
    assert len(peer.arrivals("/slack")) == 2
    slack = await rows(pool, "slack")
    triggers = [r for r in slack if r["action"] == "trigger"]
    assert all(r["attempts"] == 1 and r["due_in"] > 290 for r in triggers)
    assert all(r["last_error"].startswith("HTTP 401 from slack") for r in triggers)
    resolve = next(r for r in slack if r["action"] == "resolve")
    assert resolve["attempts"] == 0 and resolve["delivered_at"] is None  # after its trigger
    assert sample(daemon, "sla_monitor_channel_up", channel="slack") == 0
    assert sample(daemon, "sla_monitor_channel_up", channel="pagerduty") == 1
    refused = [e for e in logs if e["event"] == "delivery_refused"]
    assert refused and refused[0]["log_level"] == "error"
    assert refused[0]["channel"] == "slack" and refused[0]["status"] == 401

    async with TestClient(TestServer(make_app(daemon))) as client:
        response = await client.get("/readyz")
        detail = await response.json()
    assert response.status == 200
    assert detail["channels"]["pagerduty"]["up"] is True
    assert detail["channels"]["slack"]["up"] is False
    assert detail["channels"]["slack"]["permanent"] is True
    assert detail["channels"]["slack"]["error"].startswith("HTTP 401 from slack")

    # The webhook is fixed (a restart, or retry_parked): everything goes, in order.
    peer.answer = lambda path, body: "ok"
    assert await sender.retry_parked("slack") == 2
    await until(lambda: delivered_is(pool, "slack", 3), "slack delivered", 10)
    texts = [json.loads(body)["text"] for path, _, body in peer.requests if path == "/slack"]
    assert texts[-1].startswith(":white_check_mark: Resolved")
    assert sample(daemon, "sla_monitor_channel_up", channel="slack") == 1


async def _parked(pool: asyncpg.Pool, channel: str, count: int) -> bool:
    return sum(r["parked_at"] is not None for r in await rows(pool, channel)) == count


async def test_a_refused_message_blocks_no_other_key_of_its_channel(pool, peer, running) -> None:
    peer.answer = lambda path, body: 422 if b"poison" in body else "ok"
    settings = channel_settings({"slack": {"webhook_url": f"{peer.url}/slack"}}, retry_max=300)
    _, sender = await sender_for(pool, settings, probe_interval=0.1)
    await queue(pool, "slack", "a", summary="poison")
    await queue(pool, "slack", "a", "resolve", summary="poison")
    for n in range(5):
        await queue(pool, "slack", f"key-{n}")
    running(sender)
    await until(lambda: delivered_is(pool, "slack", 5), "the other keys", 10)
    poisoned = (await rows(pool, "slack"))[0]
    assert poisoned["parked_at"] is not None and poisoned["attempts"] == 1
    assert poisoned["last_error"].startswith("HTTP 422 from slack")


async def test_a_message_a_notifier_cannot_render_is_parked_not_fatal(pool, peer, running) -> None:
    settings = channel_settings({"slack": {"webhook_url": f"{peer.url}/slack"}}, retry_max=300)
    _, sender = await sender_for(pool, settings, probe_interval=0.1)
    async with pool.acquire() as conn:  # no annotations: the Slack notifier cannot render it
        await conn.execute(
            "INSERT INTO sla_monitor.outbox (dedup_key, action, channel, payload)"
            " VALUES ('broken', 'trigger', 'slack', '{\"labels\": {}}')"
        )
    for n in range(3):
        await queue(pool, "slack", f"key-{n}")
    running(sender)
    await until(lambda: delivered_is(pool, "slack", 3), "the other messages", 10)
    broken = (await rows(pool, "slack"))[0]
    assert broken["parked_at"] is not None and broken["delivered_at"] is None
    assert broken["last_error"] == "KeyError in the slack notifier (see the log)"


async def test_errors_never_quote_a_channel_secret(pool, peer) -> None:
    secrets = ("SLACKPATHSECRET", "PDROUTINGSECRET", "HOOKURLSECRET", "HOOKSIGNSECRET")
    answers = {"/services/T0/B0/SLACKPATHSECRET": 404, "/pagerduty": 500}
    peer.answer = lambda path, body: answers.get(path, 410)
    peer.echo = True  # the answers quote the request path and body, secrets included
    settings = channel_settings(
        {
            "slack": {"webhook_url": f"{peer.url}/services/T0/B0/SLACKPATHSECRET"},
            "pagerduty": {"url": f"{peer.url}/pagerduty", "routing_key": "PDROUTINGSECRET"},
            # Nobody listens there: connection refused.
            "webhook": {
                "url": f"http://127.0.0.1:{free_port()}/hook/HOOKURLSECRET",
                "secret": "HOOKSIGNSECRET",
            },
        },
        retry_initial=60,
    )
    _, sender = await sender_for(pool, settings)
    for channel in ("slack", "pagerduty", "webhook"):
        await queue(pool, channel, "k1")
    try:
        with structlog.testing.capture_logs() as logs:
            assert await sender.deliver_due() == 3
            refused = (await rows(pool, "webhook"))[0]["last_error"]
            # Now the webhook answers 410, quoting its path.
            webhook: Any = sender.notifiers["webhook"]
            webhook.url = f"{peer.url}/hook/HOOKURLSECRET"
            async with pool.acquire() as conn:
                await conn.execute("UPDATE sla_monitor.outbox SET next_attempt_at = now()")
            assert await sender.deliver_due() == 3
    finally:
        await sender.close()
    assert refused.startswith("ClientConnectorError posting to webhook")
    errors = [r["last_error"] for r in await rows(pool)]
    assert [e.split(":")[0] for e in errors] == [
        "HTTP 404 from slack",
        "HTTP 500 from pagerduty",
        "HTTP 410 from webhook",
    ]
    failures = [e for e in logs if e["event"] in ("delivery_failed", "delivery_refused")]
    assert len(failures) == 6
    text = repr(logs) + repr(errors) + refused
    for secret in secrets:
        assert secret not in text


def test_delivery_has_its_own_connections() -> None:
    settings = channel_settings(
        {
            "slack": {"webhook_url": "http://127.0.0.1:9/s"},
            "pagerduty": {"url": "http://127.0.0.1:9/p", "routing_key": "k"},
        }
    )
    assert delivery_connections(settings) == (3, 0)  # two senders and the housekeeping
    settings.updates.enabled = True
    assert delivery_connections(settings) == (4, 1)  # + the helpdesk's, + its insert


async def test_hanging_channels_never_starve_polling(database_dsn, peer) -> None:
    peer.answer = lambda path, body: "hang"
    channels = {
        "slack": {"webhook_url": f"{peer.url}/slack"},
        "pagerduty": {"url": f"{peer.url}/pagerduty", "routing_key": "k"},
        "webhook": {"url": f"{peer.url}/hook", "secret": "s"},
        "alertmanager": {"url": f"{peer.url}/am"},
    }
    settings = channel_settings(channels, timeout=30)
    settings.database.dsn = SecretStr(database_dsn)
    async with open_pools(settings) as (store, _):
        _, sender = await sender_for(store, settings)
        for channel in channels:
            for n in range(3):
                await queue(store, channel, f"{channel}-{n}")
        task = asyncio.create_task(sender.run())
        try:
            await until(lambda: len(peer.requests) == 4, "every channel hanging", 10)
            # Every sender holds a connection in its claim; the poller's four are still free.
            held = [await asyncio.wait_for(store.acquire(), 2) for _ in range(4)]
            for conn in held:
                await store.release(conn)
        finally:
            sender.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await sender.close()

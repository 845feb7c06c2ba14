"""Against a real Request Tracker 5 on loopback (scripts/rt/start.sh): tickets created by a
customer through REST2, answered, commented and stalled by staff, read by the RT source under a
least-privileged PostgreSQL role, progress updates posted back through REST2."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from sla_monitor.app import build_daemon, build_sender
from sla_monitor.config import PolicySettings, Settings
from sla_monitor.daemon import Daemon
from sla_monitor.http import make_app
from tests.integration.test_cli import sla_monitor

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
RT_SERVER = Path("/usr/share/request-tracker5/libexec/rt-server")
RT_URL = "http://127.0.0.1:8088"
RT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/rtdb"
READER = "sla_monitor_rt_reader"
# The least privilege the RT source needs: SELECT on the tables it reads, nothing else.
READ_TABLES = ("tickets", "transactions", "queues", "users", "groups", "groupmembers")


@pytest.fixture(scope="module")
def rt() -> Iterator[str]:
    if not RT_SERVER.exists():
        message = "Request Tracker 5 is not installed (scripts/rt/install.sh; .ci/run runs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    subprocess.run([str(ROOT / "scripts" / "rt" / "start.sh")], check=True)
    yield RT_URL


def rest(method: str, path: str, user: str, body: dict[str, Any] | None = None) -> Any:
    password = "password" if user == "root" else f"{user}-pass"
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request = urllib.request.Request(
        f"{RT_URL}/REST/2.0/{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


class RtHelpdesk:
    """Drives RT as its users would, and back-dates through SQL where a test needs the past."""

    def __init__(self, admin: asyncpg.Connection) -> None:
        self.admin = admin
        self.created: list[str] = []

    def open_ticket(
        self, subject: str, requestor: str = "customer@example.com", **fields: str
    ) -> str:
        answer = rest(
            "POST",
            "ticket",
            "customer" if requestor == "customer@example.com" else "root",
            {
                "Queue": "General",
                "Subject": subject,
                "Requestor": requestor,
                "Content": "Please help.",
                **fields,
            },
        )
        self.created.append(str(answer["id"]))
        return str(answer["id"])

    def reply(self, ticket: str, text: str = "We are on it.") -> None:
        rest(
            "POST",
            f"ticket/{ticket}/correspond",
            "staff",
            {"Content": text, "ContentType": "text/plain"},
        )

    def comment(self, ticket: str) -> None:
        rest(
            "POST",
            f"ticket/{ticket}/comment",
            "staff",
            {"Content": "internal: check the logs", "ContentType": "text/plain"},
        )

    def set_status(self, ticket: str, status: str) -> None:
        rest("PUT", f"ticket/{ticket}", "staff", {"Status": status})

    async def backdate(self, ticket: str, by: timedelta) -> None:
        """Moves the ticket and its whole history into the past."""
        await self.admin.execute(
            "UPDATE tickets SET created = created - $2::interval, "
            "lastupdated = lastupdated - $2::interval WHERE id = $1",
            int(ticket),
            by,
        )
        await self.admin.execute(
            "UPDATE transactions SET created = created - $2::interval "
            "WHERE objecttype = 'RT::Ticket' AND objectid = $1",
            int(ticket),
            by,
        )
        await self.admin.execute(
            "UPDATE tickets SET lastupdated = now() AT TIME ZONE 'UTC' WHERE id = $1", int(ticket)
        )

    def history(self, ticket: str) -> list[dict[str, Any]]:
        items = rest("GET", f"ticket/{ticket}/history?fields=Type,Creator&per_page=100", "root")[
            "items"
        ]
        return list(items)


@pytest.fixture
async def helpdesk(rt: str) -> AsyncIterator[RtHelpdesk]:
    admin = await asyncpg.connect(RT_ADMIN_DSN)
    desk = RtHelpdesk(admin)
    try:
        yield desk
    finally:
        for ticket in desk.created:  # leave RT as we found it: nothing open from us
            rest("PUT", f"ticket/{ticket}", "root", {"Status": "deleted"})
        await admin.close()


@pytest.fixture(scope="module")
def reader_dsn(rt: str) -> Iterator[str]:
    """A role with SELECT on RT's tables only (trust auth on loopback: no password)."""
    import asyncio

    async def create() -> None:
        admin = await asyncpg.connect(RT_ADMIN_DSN)
        exists = await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", READER)
        if not exists:
            await admin.execute(f"CREATE ROLE {READER} LOGIN")
        await admin.execute(f"GRANT SELECT ON {', '.join(READ_TABLES)} TO {READER}")
        await admin.close()

    async def drop() -> None:
        admin = await asyncpg.connect(RT_ADMIN_DSN)
        await admin.execute(f"REVOKE ALL ON {', '.join(READ_TABLES)} FROM {READER}")
        await admin.execute(f"DROP ROLE IF EXISTS {READER}")
        await admin.close()

    asyncio.run(create())
    try:
        yield f"postgresql://{READER}@127.0.0.1:5432/rtdb"
    finally:
        asyncio.run(drop())


def rt_settings(state_dsn: str, reader: str, **updates: Any) -> Settings:
    return Settings(
        database={"dsn": state_dsn},
        source={
            "kind": "rt",
            "dsn": reader,
            "rt_url": RT_URL,
            "rt_user": "sla-monitor",
            "rt_password": "sla-monitor-pass",
        },
        updates={
            "enabled": bool(updates),
            "quiet_hours": "off",
            "min_ticket_age": 0,
            "templates_dir": str(ROOT / "config" / "templates"),
            **updates,
        },
    )


@pytest.fixture
async def pools(
    database_dsn: str, reader_dsn: str
) -> AsyncIterator[tuple[asyncpg.Pool, asyncpg.Pool]]:
    state = await asyncpg.create_pool(database_dsn, min_size=1, max_size=4)
    source = await asyncpg.create_pool(reader_dsn, min_size=1, max_size=4)
    try:
        yield state, source
    finally:
        await state.close()
        await source.close()


async def started(settings: Settings, pools: tuple[asyncpg.Pool, asyncpg.Pool]) -> Daemon:
    daemon = build_daemon(settings, *pools)
    await daemon.store.migrate()
    return daemon


def state(daemon: Daemon, ticket: str, clock: str) -> str:
    evaluation = daemon.tracker.evaluation(ticket)
    assert evaluation is not None, f"ticket {ticket} is not tracked"
    return evaluation.clocks[clock].state.value  # type: ignore[index]


async def test_unanswered_ticket_breaches_and_a_reply_stops_the_clock(
    helpdesk, pools, database_dsn, reader_dsn
) -> None:
    late = helpdesk.open_ticket("Website down")
    await helpdesk.backdate(late, timedelta(hours=2))
    fresh = helpdesk.open_ticket("Mail delayed")
    noted = helpdesk.open_ticket("DNS question")
    helpdesk.comment(noted)  # an internal comment is no response
    await helpdesk.backdate(noted, timedelta(minutes=70))
    settings = rt_settings(database_dsn, reader_dsn)
    daemon = await started(settings, pools)
    await daemon.poll_once()

    assert state(daemon, late, "first_response") == "breached"
    assert state(daemon, noted, "first_response") == "breached"
    assert state(daemon, fresh, "first_response") == "ok"
    evaluation = daemon.tracker.evaluation(fresh)
    assert evaluation is not None and evaluation.queue == "General"
    assert evaluation.subject == "Mail delayed"
    async with TestClient(TestServer(make_app(daemon))) as client:
        text = await (await client.get("/metrics")).text()
    line = (
        'sla_monitor_open_tickets{clock="first_response",priority="low",queue="General",'
        'state="breached"}'
    )
    breached = float(next(x for x in text.splitlines() if x.startswith(line)).split()[-1])
    assert breached >= 2

    result = sla_monitor(
        "evaluate",
        "--json",
        env={
            "SLA_MONITOR_DATABASE__DSN": database_dsn,
            "SLA_MONITOR_SOURCE__KIND": "rt",
            "SLA_MONITOR_SOURCE__DSN": reader_dsn,
        },
    )
    assert result.returncode == 0, result.stderr
    clocks = {t["ticket_id"]: t["clocks"] for t in json.loads(result.stdout)["tickets"]}
    assert clocks[late]["first_response"]["state"] == "breached"
    assert clocks[late]["first_response"]["remaining_seconds"] < -3500

    helpdesk.reply(fresh)
    helpdesk.set_status(noted, "stalled")
    await daemon.poll_once()
    assert state(daemon, fresh, "first_response") == "met"
    assert state(daemon, noted, "resolution") == "paused"
    async with pools[0].acquire() as conn:
        met = await conn.fetchval(
            "SELECT met FROM sla_monitor.completions "
            "WHERE ticket_id = $1 AND clock = 'first_response'",
            fresh,
        )
    assert met is True
    helpdesk.set_status(late, "resolved")
    await daemon.poll_once()
    assert daemon.tracker.evaluation(late) is None


async def test_explain_and_the_api_tell_an_rt_ticket_s_story_with_its_ledger(
    helpdesk, pools, database_dsn, reader_dsn
) -> None:
    """A ticket answered in RT and stalled for an hour: `explain` and the per-ticket API
    say which time counted and which did not, with the ledger the daemon recorded."""
    ticket = helpdesk.open_ticket("Invoice <b>missing</b>")
    helpdesk.reply(ticket)
    helpdesk.set_status(ticket, "stalled")
    await helpdesk.backdate(ticket, timedelta(hours=1))  # stalled for an hour,
    helpdesk.set_status(ticket, "open")  # then open again,
    await helpdesk.backdate(ticket, timedelta(hours=1))  # an hour ago
    settings = rt_settings(database_dsn, reader_dsn)
    daemon = await started(settings, pools)
    await daemon.poll_once()  # records its outcomes and its ledger

    env = {
        "SLA_MONITOR_DATABASE__DSN": database_dsn,
        "SLA_MONITOR_SOURCE__KIND": "rt",
        "SLA_MONITOR_SOURCE__DSN": reader_dsn,
    }
    result = sla_monitor("explain", ticket, "--json", env=env)
    assert result.returncode == 0, result.stderr
    explained = json.loads(result.stdout)
    assert explained["subject"] == "Invoice <b>missing</b>"
    clocks = {clock["clock"]: clock for clock in explained["clocks"]}
    assert clocks["first_response"]["state"] == "met"
    stalled = [s for s in clocks["resolution"]["spans"] if s["status"] == "stalled"]
    assert [round(span["wall_seconds"] / 60) for span in stalled] == [60]
    assert not any(span["counted"] for span in stalled)
    kinds = {(entry["clock"], entry["kind"]) for entry in explained["ledger"]}
    assert {("first_response", "started"), ("first_response", "met")} <= kinds
    assert {("resolution", "started"), ("resolution", "paused"), ("resolution", "resumed")} <= (
        kinds
    )
    text = sla_monitor("explain", ticket, env=env)
    assert text.returncode == 0, text.stderr
    assert "stalled" in text.stdout and "Ledger" in text.stdout

    async with TestClient(TestServer(make_app(daemon))) as client:
        answer = await client.get(f"/api/v1/tickets/{ticket}")
        assert answer.status == 200
        served = await answer.json()
    assert served["policy"] == explained["policy"]
    assert [(e["clock"], e["kind"], e["at"]) for e in served["ledger"]] == [
        (e["clock"], e["kind"], e["at"]) for e in explained["ledger"]
    ]


async def test_the_board_shows_an_rt_ticket_breached_with_a_link_into_rt(
    helpdesk, pools, database_dsn, reader_dsn
) -> None:
    """An unanswered RT ticket two hours old is on the board, breached, its markup subject
    escaped, linked to RT's own page for it (the default ticket_url with an RT source)."""
    ticket = helpdesk.open_ticket("Mail <i>bounces</i>")
    await helpdesk.backdate(ticket, timedelta(hours=2))
    settings = rt_settings(database_dsn, reader_dsn)
    assert settings.escalation.ticket_url == f"{RT_URL}/Ticket/Display.html?id={{ticket_id}}"
    daemon = await started(settings, pools)
    await daemon.poll_once()
    async with TestClient(TestServer(make_app(daemon))) as client:
        answer = await client.get("/")
        html = await answer.text()
    assert answer.status == 200
    assert f'data-ticket="{ticket}"' in html
    assert f'href="{RT_URL}/Ticket/Display.html?id={ticket}"' in html
    assert "Mail &lt;i&gt;bounces&lt;/i&gt;" in html and "<i>bounces" not in html
    assert "over by 1h" in html


async def test_one_progress_update_per_interval_visible_in_rt_history(
    helpdesk, pools, database_dsn, reader_dsn
) -> None:
    ticket = helpdesk.open_ticket("Server migration")
    helpdesk.reply(ticket, "Migration scheduled.")
    await helpdesk.backdate(ticket, timedelta(hours=5))  # the reply is 5 h old: owed news
    settings = rt_settings(database_dsn, reader_dsn, mode="post")
    daemon = await started(settings, pools)
    sender = build_sender(settings, daemon.tracker, daemon.metrics, pools[0], pools[1])
    try:
        await daemon.poll_once()
        assert await sender.deliver_due() == 1
        for _ in range(3):  # RT's new correspondence opens the next window: nothing more
            await daemon.poll_once()
            assert await sender.deliver_due() == 0
        assert state(daemon, ticket, "update") == "ok"
        # The first response is still the staff reply; the update did not count as one.
        evaluation = daemon.tracker.evaluation(ticket)
        assert evaluation is not None
        assert evaluation.clocks["first_response"].stopped_at is not None  # type: ignore[index]

        # A delivery whose outcome was uncertain is retried: RT is asked first, nothing doubles.
        # (The daemon would cancel it anyway, as the ticket no longer owes news: this checks
        # the RT side alone.)
        async with pools[0].acquire() as conn:
            await conn.execute("UPDATE sla_monitor.outbox SET delivered_at = NULL")
        assert sender.still_owed is not None and not sender.still_owed(ticket)
        sender.still_owed = lambda ticket_id: True
        assert await sender.deliver_due() == 1
    finally:
        await sender.close()

    history = helpdesk.history(ticket)
    by_bot = [
        h for h in history if h["Type"] == "Correspond" and h["Creator"]["id"] == "sla-monitor"
    ]
    assert len(by_bot) == 1
    async with pools[0].acquire() as conn:
        rows = await conn.fetch(
            "SELECT attempts FROM sla_monitor.outbox WHERE dedup_key LIKE $1",
            f"%/{ticket}/update/%",
        )
    assert [r["attempts"] for r in rows] == [2]  # one update, delivered twice, posted once


CONTRACT_CUSTOMER = "contract-customer@example.com"


@pytest.fixture
def contract_customer(rt: str) -> Iterator[str]:
    """An RT user with an Organization and a Country (users cannot be deleted in RT: it is
    enabled for the test, disabled after)."""
    fields = {"Organization": "Acme Japan", "Country": "JP", "Disabled": "0"}
    try:
        rest("GET", f"user/{CONTRACT_CUSTOMER}", "root")
        rest("PUT", f"user/{CONTRACT_CUSTOMER}", "root", fields)
    except urllib.error.HTTPError as error:
        if error.code != 404:
            raise
        rest(
            "POST",
            "user",
            "root",
            {"Name": CONTRACT_CUSTOMER, "EmailAddress": CONTRACT_CUSTOMER, **fields},
        )
    try:
        yield CONTRACT_CUSTOMER
    finally:
        rest("PUT", f"user/{CONTRACT_CUSTOMER}", "root", {"Disabled": "1"})


async def test_the_requestor_organization_and_rt_sla_say_who_the_ticket_is_for(
    helpdesk, pools, database_dsn, reader_dsn, contract_customer
) -> None:
    """RT's per-ticket SLA and the requestor's Organization choose the policy."""
    gold = helpdesk.open_ticket("Payment failing", requestor=contract_customer, SLA="gold")
    plain = helpdesk.open_ticket("Question")
    settings = rt_settings(database_dsn, reader_dsn)
    settings.policies = {
        "gold": PolicySettings(match={"sla": "gold"}, first_response="30m"),
        "default": PolicySettings(),
    }
    daemon = await started(settings, pools)
    tickets = {}
    async for batch in daemon.source.open_tickets():
        tickets.update({t.ticket_id: t for t in batch.tickets})
    assert tickets[gold].customer == contract_customer
    assert tickets[gold].organization == "Acme Japan"
    assert tickets[gold].attributes == {"sla": "gold", "country": "JP"}
    assert tickets[plain].customer == "customer@example.com"
    assert tickets[plain].organization is None
    assert "sla" not in tickets[plain].attributes

    await daemon.poll_once()
    gold_evaluation = daemon.tracker.evaluation(gold)
    assert gold_evaluation is not None and gold_evaluation.policy == "gold"
    assert gold_evaluation.clocks["first_response"].target_seconds == 1800  # type: ignore[index]
    plain_evaluation = daemon.tracker.evaluation(plain)
    assert plain_evaluation is not None and plain_evaluation.policy == "default"


async def test_the_reader_role_can_only_read(reader_dsn: str) -> None:
    conn = await asyncpg.connect(reader_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) >= 0 FROM tickets")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("UPDATE tickets SET subject = subject WHERE false")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetchval("SELECT count(*) FROM attachments")
    finally:
        await conn.close()

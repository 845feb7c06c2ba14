"""The HTTP API under /api/v1/: listing, explanation, OpenAPI document, token and headers.

Every API response the tests receive is validated against the served OpenAPI document.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import jsonschema
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from sla_monitor.daemon import Daemon
from sla_monitor.errors import DatabaseUnavailable
from sla_monitor.http import make_app, openapi_document
from sla_monitor.schema import HttpSettings
from tests.integration.helpdesk import FakeClock, Helpdesk, make_daemon

pytestmark = pytest.mark.integration
TOKEN = "s3cret-token-4711"
MARKUP = "<script>alert('x')</script><img src=x onerror=alert(1)> & \"quotes\""


def validate(value: Any, schema: dict[str, Any], document: dict[str, Any]) -> None:
    """``value`` against a schema of the OpenAPI 3.1 document (JSON Schema 2020-12), its
    ``#/components/...`` references resolved within the document."""
    resolver_root = {**document, **schema}
    jsonschema.Draft202012Validator(resolver_root).validate(value)


async def checked(response: ClientResponse, document: dict[str, Any]) -> Any:
    """The response's JSON, after checking it against the document and the API's headers."""
    assert response.content_type == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    body = await response.json()
    route = response.url.path
    path = "/api/v1/tickets/{ticket_id}" if route.count("/") == 4 else route
    operation = document["paths"][path]["get"]
    declared = operation["responses"][str(response.status)]
    if "content" in declared:
        validate(body, declared["content"]["application/json"]["schema"], document)
    return body


@pytest.fixture
async def tracked(pool: asyncpg.Pool, helpdesk: Helpdesk) -> AsyncIterator[tuple[Daemon, dict]]:
    """A synced daemon at minute 70: tickets at risk, breached, paused and fine."""
    ids = {
        "breached": await helpdesk.ticket(created=0, subject=MARKUP),
        "at_risk": await helpdesk.ticket(created=20, priority="high", queue="billing"),
        "ok": await helpdesk.ticket(created=65),
        "paused": await helpdesk.ticket(created=30),
    }
    await helpdesk.set_status(ids["paused"], 40, "pending")
    daemon = make_daemon(pool, FakeClock(70))
    await daemon.store.migrate()
    await daemon.cycle()
    yield daemon, ids


async def test_listing_by_state_soonest_deadline_first(tracked) -> None:
    daemon, ids = tracked
    async with TestClient(TestServer(make_app(daemon))) as client:
        served = await client.get("/api/v1/openapi.json")
        assert served.headers["Cache-Control"] == "no-store"
        document = await served.json()
        assert document == openapi_document() and document["openapi"] == "3.1.0"
        body = await checked(
            await client.get("/api/v1/tickets?state=at_risk,breached&sort=deadline"), document
        )
        assert [t["ticket_id"] for t in body["tickets"]] == [ids["breached"], ids["at_risk"]]
        first = body["tickets"][0]
        assert first["deadline"] == "2026-03-02T10:00:00+00:00"
        assert first["clocks"] == [
            {
                "clock": "first_response",
                "state": "breached",
                "deadline": "2026-03-02T10:00:00+00:00",
            }
        ]
        assert body["next_cursor"] is None
        billing = await checked(
            await client.get("/api/v1/tickets?queue=billing&priority=high&clock=&limit=10"),
            document,
        )
        assert [t["ticket_id"] for t in billing["tickets"]] == [ids["at_risk"]]
        paused = await checked(await client.get("/api/v1/tickets?state=paused"), document)
        assert [t["ticket_id"] for t in paused["tickets"]] == [ids["paused"]]
        assert paused["tickets"][0]["clocks"][0]["deadline"] is None


async def test_pages_by_cursor(tracked) -> None:
    daemon, ids = tracked
    document = openapi_document()
    async with TestClient(TestServer(make_app(daemon))) as client:
        seen: list[str] = []
        url = "/api/v1/tickets?limit=1"
        while True:
            body = await checked(await client.get(url), document)
            seen += [t["ticket_id"] for t in body["tickets"]]
            if body["next_cursor"] is None:
                break
            url = f"/api/v1/tickets?limit=1&cursor={body['next_cursor']}"
        every = await checked(await client.get("/api/v1/tickets?limit=500"), document)
        assert seen == [t["ticket_id"] for t in every["tickets"]]
        assert sorted(seen) == sorted(ids.values())


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("colour=red", "colour"),
        ("state=late", "state"),
        ("clock=first_response,lunch", "clock"),
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("limit=501", "limit"),
        ("sort=subject", "sort"),
        ("cursor=%%%", "cursor"),
        ("cursor=WzEsMl0=", "cursor"),  # [1,2]: an id that is no string
        ("state=ok&state=paused", "state"),
    ],
)
async def test_bad_parameters_are_400_naming_the_parameter(tracked, query, parameter) -> None:
    daemon, _ = tracked
    async with TestClient(TestServer(make_app(daemon))) as client:
        response = await client.get(f"/api/v1/tickets?{query}")
        assert response.status == 400
        body = await checked(response, openapi_document())
        assert body["parameter"] == parameter


async def test_a_ticket_explained_and_an_unknown_one(tracked) -> None:
    daemon, ids = tracked
    document = openapi_document()
    async with TestClient(TestServer(make_app(daemon))) as client:
        body = await checked(await client.get(f"/api/v1/tickets/{ids['paused']}"), document)
        assert body["ticket_id"] == ids["paused"] and body["category"] == "paused"
        assert body["paused_since"] == "2026-03-02T09:40:00+00:00"
        first = next(c for c in body["clocks"] if c["clock"] == "first_response")
        assert [(s["counted"], s["reason"]) for s in first["spans"]] == [
            (True, "counted: status 'new'"),
            (False, "paused by status 'pending'"),
        ]
        # The helpdesk's calendar is 24x7: nothing outside business hours.
        assert first["spans"][0]["outside_business_hours"] == []
        assert "outside_business_hours" not in first["spans"][1]
        missing = await client.get("/api/v1/tickets/424242")
        assert missing.status == 404
        await checked(missing, document)
        for path in (f"/api/v1/tickets/{ids['paused']}?now=1", "/api/v1/openapi.json?x=1"):
            bad = await client.get(path)
            assert bad.status == 400
            assert (await checked(bad, document))["parameter"] in ("now", "x")


async def test_a_resolved_ticket_is_read_from_the_helpdesk_and_explained(
    tracked, helpdesk: Helpdesk, monkeypatch
) -> None:
    """A ticket the tracker no longer holds (resolved) is explained as `explain` does: read
    from the helpdesk by id; a ticket it cannot judge is 409, the helpdesk away 503."""
    daemon, ids = tracked
    await helpdesk.reply(ids["at_risk"], 45)
    await helpdesk.set_status(ids["at_risk"], 60, "resolved")
    await daemon.poll_once()
    assert daemon.tracker.ticket(ids["at_risk"]) is None
    document = openapi_document()
    async with TestClient(TestServer(make_app(daemon))) as client:
        body = await checked(await client.get(f"/api/v1/tickets/{ids['at_risk']}"), document)
        assert body["ticket_id"] == ids["at_risk"] and body["status"] == "resolved"
        states = {c["clock"]: c["state"] for c in body["clocks"]}
        assert states["first_response"] == "met" and states["resolution"] == "met"

        bad = await helpdesk.ticket(created=10, priority="no-such-priority")
        refused = await client.get(f"/api/v1/tickets/{bad}")
        assert refused.status == 409
        assert (await checked(refused, document))["error"] == "cannot_judge"

        async def away(ticket_id: str) -> None:
            raise DatabaseUnavailable(OSError("connection refused"))

        monkeypatch.setattr(daemon.source, "ticket", away)
        unavailable = await client.get(f"/api/v1/tickets/{ids['at_risk']}")
        assert unavailable.status == 503
        assert (await checked(unavailable, document))["error"] == "source_unavailable"
        # A tracked ticket needs no helpdesk read: still explained while it is away.
        assert (await client.get(f"/api/v1/tickets/{ids['paused']}")).status == 200


async def test_a_ticket_shows_its_ledger_so_far(tracked, monkeypatch) -> None:
    daemon, ids = tracked
    document = openapi_document()
    async with TestClient(TestServer(make_app(daemon))) as client:
        body = await checked(await client.get(f"/api/v1/tickets/{ids['paused']}"), document)
        assert [(e["clock"], e["kind"], e["at"]) for e in body["ledger"]] == [
            ("first_response", "started", "2026-03-02T09:30:00+00:00"),
            ("resolution", "started", "2026-03-02T09:30:00+00:00"),
            ("update", "started", "2026-03-02T09:30:00+00:00"),
            ("first_response", "paused", "2026-03-02T09:40:00+00:00"),
            ("resolution", "paused", "2026-03-02T09:40:00+00:00"),
            ("update", "paused", "2026-03-02T09:40:00+00:00"),
        ]
        paused = body["ledger"][3]
        assert paused["elapsed_seconds"] == 600 and paused["window_key"] == ""
        assert paused["policy"] == "default" and paused["previous_policy"] is None
        update = body["ledger"][2]
        assert update["window_key"] == "2026-03-02T09:30:00+00:00"
        breached = await checked(await client.get(f"/api/v1/tickets/{ids['breached']}"), document)
        assert ("first_response", "breached", "2026-03-02T10:00:00+00:00") in {
            (e["clock"], e["kind"], e["at"]) for e in breached["ledger"]
        }

        async def away(ticket_id: str) -> list:
            raise DatabaseUnavailable(OSError("connection refused"))

        # The database away: the explanation stands, the ledger is null.
        monkeypatch.setattr(daemon.store, "ledger", away)
        alone = await checked(await client.get(f"/api/v1/tickets/{ids['paused']}"), document)
        assert alone["ledger"] is None and alone["clocks"]


async def test_markup_in_a_subject_stays_inert_json(tracked) -> None:
    daemon, ids = tracked
    document = openapi_document()
    async with TestClient(TestServer(make_app(daemon))) as client:
        listed = await client.get("/api/v1/tickets?state=breached")
        raw = await listed.text()
        body = await checked(listed, document)
        assert body["tickets"][0]["subject"] == MARKUP
        assert "<script>" in raw  # JSON escapes quotes, not markup: safe as application/json
        explained = await checked(await client.get(f"/api/v1/tickets/{ids['breached']}"), document)
        assert explained["subject"] == MARKUP


async def test_show_subjects_false_hides_them(tracked) -> None:
    daemon, ids = tracked
    document = openapi_document(show_subjects=False)
    app = make_app(daemon, HttpSettings(show_subjects=False))
    async with TestClient(TestServer(app)) as client:
        listed = await client.get("/api/v1/tickets")
        assert MARKUP not in await listed.text()
        body = await checked(listed, document)
        assert all("subject" not in t for t in body["tickets"])
        explained = await client.get(f"/api/v1/tickets/{ids['breached']}")
        assert "script" not in await explained.text()
        await checked(explained, document)
        served = await (await client.get("/api/v1/openapi.json")).json()
        assert served == document


async def test_a_token_guards_the_api_only_and_never_reaches_the_logs(
    tracked, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    daemon, ids = tracked
    document = openapi_document()
    caplog.set_level(logging.DEBUG)
    app = make_app(daemon, HttpSettings(token=SecretStr(TOKEN)))
    async with TestClient(TestServer(app)) as client:
        for path in ("/api/v1/tickets", f"/api/v1/tickets/{ids['ok']}", "/api/v1/tickets/nope"):
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
                response = await client.get(path, headers=headers)
                assert response.status == 401, (path, headers)
                # The same answer whether the ticket exists or not.
                assert await checked(response, document) == {
                    "error": "unauthorized",
                    "detail": "this API needs Authorization: Bearer <token>",
                }
        good = {"Authorization": f"Bearer {TOKEN}"}
        await checked(await client.get("/api/v1/tickets", headers=good), document)
        missing = await client.get("/api/v1/tickets/nope", headers=good)
        assert missing.status == 404
        assert (await client.get("/api/v1/openapi.json")).status == 401
        assert (await client.get("/api/v1/openapi.json", headers=good)).status == 200
        for open_path in ("/metrics", "/healthz", "/readyz"):
            response = await client.get(open_path)
            assert response.status == 200, open_path
            assert "Content-Security-Policy" not in response.headers
    assert TOKEN not in caplog.text
    out, err = capfd.readouterr()  # structlog writes to the process's streams
    assert TOKEN not in out + err
    assert TOKEN not in repr(HttpSettings(token=SecretStr(TOKEN)))


def test_the_token_file_is_read_and_an_empty_token_refused(tmp_path) -> None:
    secret = tmp_path / "token"
    secret.write_text(f"{TOKEN}\n")
    assert HttpSettings(token_file=secret).token.get_secret_value() == TOKEN  # type: ignore[union-attr]
    secret.write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        HttpSettings(token_file=secret)

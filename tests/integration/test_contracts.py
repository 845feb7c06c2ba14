"""Contracts against a real PostgreSQL: who a ticket is for, read from the reference schema,
chooses its policy; the daemon's gauges and `evaluate --json` show it, metrics never name the
customer."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from sla_monitor.config import load_settings
from sla_monitor.http import make_app
from sla_monitor.schema import Settings
from sla_monitor.sources.sql import REFERENCE_SCHEMA, SqlSource
from tests.integration.helpdesk import FakeClock, Helpdesk, at, make_daemon, sample
from tests.integration.test_cli import EX_CONFIG, sla_monitor

pytestmark = pytest.mark.integration

GOLD_CONFIG = """
[policies.gold]
match = { plan = ["gold", "platinum"] }
first_response = "30m"

[policies.default]
first_response = "1h"
"""


async def contract_ticket(
    conn: asyncpg.Connection,
    created: float,
    customer: str | None = None,
    organization: str | None = None,
    attributes: str = "{}",
    priority: str = "normal",
) -> str:
    ticket_id = await conn.fetchval(
        "INSERT INTO helpdesk.tickets (created_at, priority, requester_email, organization,"
        " attributes) VALUES ($1, $2, $3, $4, $5::jsonb) RETURNING id::text",
        at(created),
        priority,
        customer,
        organization,
        attributes,
    )
    return str(ticket_id)


def source(pool: asyncpg.Pool, settings: Settings) -> SqlSource:
    return SqlSource(
        pool,
        "helpdesk",
        settings.source.changed_tickets_query,
        settings.source.open_tickets_query,
        settings.source.events_query,
        settings.statuses.resolved,
        initial_status="new",
    )


async def test_the_source_reads_customer_organization_and_attributes(
    pool: asyncpg.Pool, helpdesk: Helpdesk
) -> None:
    conn = helpdesk.conn
    gold = await contract_ticket(
        conn,
        0,
        "jane@acme.example",
        "Acme",
        '{"plan": "gold", "type": "incident", "seats": 12, "vip": true, "tags": ["a"]}',
    )
    plain = await contract_ticket(conn, 0)
    array = await contract_ticket(conn, 0, attributes="[1, 2]")
    scalar = await contract_ticket(conn, 0, attributes='"gold"')
    tickets, bad = {}, {}
    async for batch in source(pool, Settings()).open_tickets():
        tickets.update({t.ticket_id: t for t in batch.tickets})
        bad.update({b.ticket_id: b for b in batch.bad_rows})

    assert tickets[gold].customer == "jane@acme.example"
    assert tickets[gold].organization == "Acme"
    assert tickets[gold].attributes == {
        "plan": "gold",
        "type": "incident",
        "seats": 12,
        "vip": True,
        "tags": ["a"],
    }
    with pytest.raises(TypeError):
        tickets[gold].attributes["plan"] = "platinum"  # type: ignore[index]
    assert tickets[plain].customer is None and tickets[plain].organization is None
    assert tickets[plain].attributes == {}
    assert set(bad) == {array, scalar}
    assert {b.reason for b in bad.values()} == {"bad_attributes"}


async def test_attributes_as_text_are_parsed_and_bad_text_is_a_bad_row(
    pool: asyncpg.Pool, helpdesk: Helpdesk
) -> None:
    """A helpdesk that keeps its fields as text (or json) in its own query: parsed the same."""
    good = await contract_ticket(helpdesk.conn, 0)
    broken = await contract_ticket(helpdesk.conn, 0)
    query = (
        "SELECT id::text AS ticket_id, created_at, updated_at, queue, status, priority, "
        "CASE WHEN id = $2::text::bigint THEN '{\"plan\": \"gold\"}' ELSE 'not json' END "
        "AS attributes FROM helpdesk.tickets WHERE status <> ALL($1::text[])"
    )
    settings = Settings()
    reader = SqlSource(
        pool,
        "helpdesk",
        settings.source.changed_tickets_query,
        query.replace("$2::text::bigint", good),
        settings.source.events_query,
        settings.statuses.resolved,
        initial_status="new",
    )
    batches = [batch async for batch in reader.open_tickets()]
    tickets = {t.ticket_id: t for b in batches for t in b.tickets}
    assert tickets[good].attributes == {"plan": "gold"}
    assert [(b.ticket_id, b.reason) for b in batches[0].bad_rows] == [(broken, "bad_attributes")]


async def test_a_gold_customer_gets_thirty_minutes_and_metrics_never_name_a_customer(
    pool: asyncpg.Pool, helpdesk: Helpdesk, tmp_path: Path
) -> None:
    """Both unanswered for 40 minutes: the gold plan's 30-minute first response is breached,
    the standard ticket is still within the default hour."""
    gold = await contract_ticket(
        helpdesk.conn, 0, "planted-customer@gold.example", "Planted Org", '{"plan": "gold"}'
    )
    standard = await contract_ticket(
        helpdesk.conn, 0, "someone@standard.example", "Other Org", '{"plan": "standard"}'
    )
    config = tmp_path / "c.toml"
    config.write_text(GOLD_CONFIG)
    daemon = make_daemon(pool, FakeClock(40), load_settings(config))
    await daemon.store.migrate()
    await daemon.poll_once()

    gold_evaluation = daemon.tracker.evaluation(gold)
    standard_evaluation = daemon.tracker.evaluation(standard)
    assert gold_evaluation is not None and standard_evaluation is not None
    assert gold_evaluation.policy == "gold"
    assert gold_evaluation.clocks["first_response"].state.value == "breached"  # type: ignore[index]
    assert gold_evaluation.clocks["first_response"].target_seconds == 1800  # type: ignore[index]
    assert standard_evaluation.policy == "default"
    assert standard_evaluation.clocks["first_response"].state.value == "ok"  # type: ignore[index]
    assert standard_evaluation.clocks["first_response"].target_seconds == 3600  # type: ignore[index]
    labels = {"clock": "first_response", "priority": "normal", "queue": "support"}
    assert sample(daemon, "sla_monitor_open_tickets", state="breached", **labels) == 1
    assert sample(daemon, "sla_monitor_open_tickets", state="ok", **labels) == 1

    async with TestClient(TestServer(make_app(daemon))) as client:
        text = await (await client.get("/metrics")).text()
    assert "sla_monitor_open_tickets" in text
    assert 'reason="bad_attributes"' in text  # exported at 0 like every reason
    for secret in ("planted-customer", "gold.example", "Planted Org", "standard.example"):
        assert secret not in text


async def test_evaluate_json_says_which_policy_matched_and_why(
    database_dsn: str, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(database_dsn)
    try:
        await conn.execute(REFERENCE_SCHEMA)
        gold = await contract_ticket(
            conn, 0, "jane@acme.example", "Acme", '{"plan": "gold"}', priority="urgent"
        )
        standard = await contract_ticket(conn, 0, attributes='{"plan": "standard"}')
    finally:
        await conn.close()
    config = tmp_path / "c.toml"
    config.write_text(
        GOLD_CONFIG.replace(
            'match = { plan = ["gold", "platinum"] }',
            'match = { plan = ["gold", "platinum"] }\npriorities = ["urgent", "high"]',
        )
    )
    result = sla_monitor(
        "--config",
        str(config),
        "evaluate",
        "--json",
        "--now",
        at(40).isoformat(),
        env={"SLA_MONITOR_DATABASE__DSN": database_dsn},
    )
    assert result.returncode == 0, result.stderr
    by_id = {t["ticket_id"]: t for t in json.loads(result.stdout)["tickets"]}
    assert by_id[gold]["policy"] == "gold"
    assert by_id[gold]["matched"] == {"priority": "urgent", "attributes.plan": "gold"}
    assert by_id[gold]["clocks"]["first_response"]["target_seconds"] == 1800
    assert by_id[gold]["clocks"]["first_response"]["state"] == "breached"
    assert by_id[standard]["policy"] == "default"
    assert by_id[standard]["matched"] == "default (no rule matched)"
    assert by_id[standard]["clocks"]["first_response"]["target_seconds"] == 3600
    assert by_id[standard]["clocks"]["first_response"]["state"] == "ok"


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            '[policies.gold]\nmatch = { plan = { is = "gold" } }\n[policies.default]\n',
            "policies.gold.match: attribute 'plan': expected a string, number or boolean",
        ),
        (
            '[policies.all]\nfirst_response = "2h"\n[policies.gold]\nmatch = { plan = "gold" }\n'
            "[policies.default]\n",
            "policies.gold: can never match: shadowed by policies.all",
        ),
    ],
)
def test_check_config_exits_78_naming_the_policy_and_field(
    tmp_path: Path, toml: str, expected: str
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(toml)
    result = sla_monitor("--config", str(config), "check-config")
    assert result.returncode == EX_CONFIG
    assert expected in result.stderr

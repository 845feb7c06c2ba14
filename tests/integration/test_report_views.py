"""The views of migration 0009 against `sla-monitor report` on the same hand-made rows, and the
report on a schema that lacks migrations."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import asyncpg
import pytest

from sla_monitor.store import migration_versions
from tests.integration.helpdesk import FakeClock, make_daemon
from tests.integration.test_cli import sla_monitor

pytestmark = pytest.mark.integration


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# (ticket, clock, stopped_at, met, elapsed seconds, customer, organization)
COMPLETIONS = [
    ("t1", "first_response", "2026-03-02 10:00", True, 300.0, "ann", "Acme"),
    ("t1", "resolution", "2026-03-02 12:00", True, 3600.0, "ann", "Acme"),
    ("t2", "first_response", "2026-03-05 09:00", True, 600.0, "bob", "Acme"),
    ("t2", "resolution", "2026-03-06 09:00", False, 9000.0, "bob", "Acme"),
    ("t3", "first_response", "2026-03-10 09:00", False, 4000.0, "carla", "Globex"),
    ("t3", "resolution", "2026-03-11 09:00", False, 5000.0, "carla", "Globex"),
    ("t4", "first_response", "2026-03-31 23:59:59", True, 100.0, "dev", "Globex"),
    ("t5", "first_response", "2026-04-01 00:00:00", True, 100.0, "dev", "Globex"),  # after
    ("t6", "first_response", "2026-02-28 23:59:59", True, 50.0, "kim", None),  # before
    ("t7", "first_response", "2026-03-15 09:00", True, 50.0, "kim", None),
]
# (ticket, clock, breached_at, customer, organization)
BREACHES = [
    ("t2", "resolution", "2026-03-06 08:00", "bob", "Acme"),
    ("t3", "first_response", "2026-03-10 08:00", "carla", "Globex"),
    ("t3", "resolution", "2026-03-11 08:00", "carla", "Globex"),
    ("t8", "first_response", "2026-03-20 08:00", "carla", "Globex"),  # still open
    ("t9", "first_response", "2026-01-15 08:00", "carla", "Globex"),  # in the churn window only
]
# The rules of the report below, passed to the function as they are to the command.
RULES = {"MIN_BREACHES": "2", "MIN_COMPLIANCE": "0.75", "MAX_WAIT": "2h"}


async def insert_outcomes(pool: asyncpg.Pool) -> None:
    daemon = make_daemon(pool, FakeClock(0))
    await daemon.store.migrate()
    async with pool.acquire() as conn:
        await conn.executemany(
            "INSERT INTO sla_monitor.completions (source, ticket_id, clock, window_key,"
            " stopped_at, met, elapsed_seconds, priority, queue, customer, organization, policy)"
            " VALUES ('helpdesk', $1, $2, '', $3, $4, $5, 'normal', 'support', $6, $7,"
            " 'default')",
            [(t, c, utc(at), met, s, who, org) for t, c, at, met, s, who, org in COMPLETIONS],
        )
        await conn.executemany(
            "INSERT INTO sla_monitor.breaches (source, ticket_id, clock, window_key,"
            " breached_at, priority, queue, customer, organization, policy)"
            " VALUES ('helpdesk', $1, $2, '', $3, 'normal', 'support', $4, $5, 'default')",
            [(t, c, utc(at), who, org) for t, c, at, who, org in BREACHES],
        )
        # Another source's rows are another report's: neither counts them.
        await conn.execute(
            "INSERT INTO sla_monitor.completions (source, ticket_id, clock, window_key,"
            " stopped_at, met, elapsed_seconds, priority, queue, customer, organization)"
            " VALUES ('other', 'x', 'first_response', '', '2026-03-03', false, 1e6, 'normal',"
            " 'support', 'bob', 'Acme')"
        )


def report(database_dsn: str) -> dict:
    env = {"SLA_MONITOR_DATABASE__DSN": database_dsn}
    env |= {f"SLA_MONITOR_CHURN__{name}": value for name, value in RULES.items()}
    result = sla_monitor(
        "report",
        "--from",
        "2026-03-01",
        "--to",
        "2026-03-31",
        "--by",
        "organization",
        "--now",
        "2026-04-01T00:00:00+00:00",
        "--format",
        "json",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


async def test_compliance_by_organization_agrees_with_the_report(pool, database_dsn) -> None:
    await insert_outcomes(pool)
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT organization, sum(completions)::int, sum(met)::int, sum(breached)::int,"
            " sum(breaches)::int, sum(met)::float8 / nullif(sum(completions), 0)"
            " FROM sla_monitor.compliance_by_organization"
            " WHERE source = 'helpdesk' AND day >= '2026-03-01' AND day < '2026-04-01'"
            ' GROUP BY organization ORDER BY organization COLLATE "C"'
        )
        per_clock = await conn.fetch(
            "SELECT clock, sum(breaches)::int FROM sla_monitor.compliance_by_organization"
            " WHERE organization = 'Globex' AND day >= '2026-03-01' AND day < '2026-04-01'"
            " GROUP BY clock ORDER BY clock"
        )
    # By hand: March holds t1-t4 and t7 (t5 stopped at the period's end, t6 before it).
    expected = [
        ("(unknown)", 1, 1, 0, 0, 1.0),
        ("Acme", 4, 3, 1, 1, 0.75),
        ("Globex", 3, 1, 2, 3, 1 / 3),  # t8 breached without completing; t9 is January's
    ]
    assert [tuple(r) for r in rows] == expected
    assert [tuple(r) for r in per_clock] == [("first_response", 2), ("resolution", 1)]
    groups = report(database_dsn)["groups"]
    assert [
        (
            g["key"]["organization"],
            g["completions"],
            g["met"],
            g["breached"],
            sum(g["breaches_by_clock"].values()),
            g["compliance"],
        )
        for g in groups
    ] == expected
    assert groups[2]["breaches_by_clock"] == dict(tuple(r) for r in per_clock)


async def test_customers_at_risk_agrees_with_the_report(pool, database_dsn) -> None:
    await insert_outcomes(pool)
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT kind, name, breaches::int, completions::int, met::int, compliance,"
            " over_max_wait::int, longest_wait_seconds, reasons"
            " FROM sla_monitor.customers_at_risk_in('90 days', 2, 0.75, '2 hours',"
            " '2026-04-01T00:00:00Z') WHERE source = 'helpdesk'"
            ' ORDER BY kind, name COLLATE "C"'
        )
    # By hand, over [2026-01-01, 2026-04-01): bob 1 of 2 met (50% < 75%) and 9000 s > 2 h;
    # carla 4 breaches (t9 in January counts) and 0 of 2 met; Acme 3 of 4 met (75%, not below)
    # but bob's 9000 s; Globex 1 of 3 met and carla's 4 breaches. ann, dev and kim are fine,
    # and kim's tickets have no organization to count under.
    assert [tuple(r) for r in rows] == [
        ("customer", "bob", 1, 2, 1, 0.5, 1, 9000.0, ["compliance", "max_wait"]),
        ("customer", "carla", 4, 2, 0, 0.0, 0, 5000.0, ["breaches", "compliance"]),
        ("organization", "Acme", 1, 4, 3, 0.75, 1, 9000.0, ["max_wait"]),
        ("organization", "Globex", 4, 3, 1, 1 / 3, 0, 5000.0, ["breaches", "compliance"]),
    ]
    at_risk = report(database_dsn)["at_risk"]
    assert [(e["kind"], e["name"], [r["reason"] for r in e["reasons"]]) for e in at_risk] == [
        (kind, name, reasons) for kind, name, *_, reasons in (tuple(r) for r in rows)
    ]


async def test_the_customers_at_risk_view_applies_the_default_rules(pool) -> None:
    await insert_outcomes(pool)
    async with pool.acquire() as conn:
        # Three breaches yesterday for one customer: at risk by [churn]'s defaults (3 in 90
        # days), which the view applies, ending now; March's rows are long out of its window.
        await conn.executemany(
            "INSERT INTO sla_monitor.breaches (source, ticket_id, clock, window_key,"
            " breached_at, priority, queue, customer) VALUES ('helpdesk', $1,"
            " 'first_response', '', now() - interval '1 day', 'normal', 'support', 'zoe')",
            [("z1",), ("z2",), ("z3",)],
        )
        view = await conn.fetch(
            "SELECT kind, name, breaches, reasons FROM sla_monitor.customers_at_risk"
        )
        two = await conn.fetch(
            "SELECT name FROM sla_monitor.customers_at_risk_in(p_min_breaches => 4)"
        )
    assert [tuple(r) for r in view] == [("customer", "zoe", 3, ["breaches"])]
    assert two == []


async def test_the_report_on_a_schema_without_migrations_says_to_migrate(
    pool, database_dsn
) -> None:
    env = {"SLA_MONITOR_DATABASE__DSN": database_dsn}
    asked = ("report", "--last", "7d")
    bare = sla_monitor(*asked, env=env)
    assert bare.returncode == 69, bare.stdout + bare.stderr
    every = ", ".join(f"{v:04d}" for v in migration_versions())
    assert f"the schema 'sla_monitor' lacks migrations {every} of this version" in bare.stderr
    assert "run `sla-monitor migrate`" in bare.stderr
    assert "Traceback" not in bare.stderr and bare.stdout == ""
    # As it says: migrated, the same report runs.
    assert sla_monitor("migrate", env=env).returncode == 0
    migrated = sla_monitor(*asked, env=env)
    assert migrated.returncode == 0, migrated.stderr
    # A schema an older version migrated: the report names what it lacks.
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM sla_monitor.schema_migrations WHERE version >= 7")
    older = sla_monitor(*asked, env=env)
    assert older.returncode == 69
    later = ", ".join(f"{v:04d}" for v in migration_versions() if v >= 7)
    assert f"lacks migrations {later} of this version; run `sla-monitor migrate`" in older.stderr


async def test_the_report_shows_the_churn_rate_from_the_helpdesk(pool, database_dsn) -> None:
    await insert_outcomes(pool)
    async with pool.acquire() as conn:
        await conn.execute(
            "CREATE SCHEMA IF NOT EXISTS helpdesk;"
            " CREATE TABLE helpdesk.cancellations (customer text, cancelled_at timestamptz)"
        )
        await conn.executemany(
            "INSERT INTO helpdesk.cancellations VALUES ($1, $2)",
            [
                ("carla", utc("2026-03-25 10:00")),
                ("bob", utc("2026-03-31 23:00")),
                ("zed", utc("2026-03-02 10:00")),
                ("ann", utc("2026-04-01 00:00")),  # after the period
            ],
        )
    env = {
        "SLA_MONITOR_DATABASE__DSN": database_dsn,
        "SLA_MONITOR_CHURN__MIN_BREACHES": "1",
        "SLA_MONITOR_CHURN__CHURNED_CUSTOMERS_QUERY": "SELECT customer FROM"
        " helpdesk.cancellations WHERE cancelled_at >= $1 AND cancelled_at < $2",
    }
    asked = ["report", "--period", "2026-03", "--now", "2026-04-01T00:00:00Z"]
    result = sla_monitor(*asked, "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    # By hand: known at 03-01, an outcome in [2025-12-01, 2026-03-01): kim (t6) and carla (t9,
    # a breach: at risk with min_breaches 1). carla left in March, kim did not; bob (first
    # seen in March) and zed (never seen) are not in the base; ann left in April.
    assert json.loads(result.stdout)["churn_rate"] == {
        "from": "2026-03-01T00:00:00+00:00",
        "to": "2026-04-01T00:00:00+00:00",
        "customers": 2,
        "lost": 1,
        "rate": 0.5,
        "at_risk": {"customers": 1, "lost": 1, "rate": 1.0},
        "others": {"customers": 1, "lost": 0, "rate": 0.0},
        "unknown_lost": 2,
    }
    table = sla_monitor(*asked, env=env)
    assert "churn rate: 1 of 2 (50.0%) customers lost" in table.stdout, table.stdout
    # Without the setting, no churn rate; with a query that fails, exit 69 naming the setting.
    plain = sla_monitor(*asked, "--format", "json", env={"SLA_MONITOR_DATABASE__DSN": database_dsn})
    assert json.loads(plain.stdout)["churn_rate"] is None
    env["SLA_MONITOR_CHURN__CHURNED_CUSTOMERS_QUERY"] = "SELECT nope FROM helpdesk.cancellations"
    failed = sla_monitor(*asked, env=env)
    assert failed.returncode == 69
    assert "churn.churned_customers_query failed" in failed.stderr, failed.stderr

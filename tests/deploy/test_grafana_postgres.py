"""The per-customer dashboard (deploy/grafana/sla-monitor-customers.json): every panel's SQL and
the customer variable's query, with Grafana's macros and variables substituted as Grafana's
PostgreSQL data source does, run against a real PostgreSQL holding the migrated schema and the
hand-made outcomes of tests/integration/test_report_views.py; each result checked by hand."""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.integration.test_report_views import insert_outcomes

pytestmark = pytest.mark.integration

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "sla-monitor-customers.json"


def test_the_customers_dashboard_is_current_with_its_builder() -> None:
    sys.path.insert(0, str(DASHBOARD.parent))
    try:
        import build_customers_dashboard
    finally:
        sys.path.pop(0)
    assert json.loads(DASHBOARD.read_text()) == build_customers_dashboard.build()


def _instant(moment: datetime) -> str:
    return f"'{moment.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}'"


def grafana_sql(sql: str, variables: dict[str, str], start: datetime, end: datetime) -> str:
    """``sql`` as Grafana's PostgreSQL data source sends it: $__timeFilter(col) becomes
    ``col BETWEEN 'from' AND 'to'``, $__timeFrom() and $__timeTo() the quoted instants,
    ${name:sqlstring} the value quoted with '' for ', and ${name} or $name the value as is."""
    sql = re.sub(
        r"\$__timeFilter\(([^)]+)\)",
        lambda m: f"{m.group(1)} BETWEEN {_instant(start)} AND {_instant(end)}",
        sql,
    )
    sql = sql.replace("$__timeFrom()", _instant(start)).replace("$__timeTo()", _instant(end))

    def variable(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        value = variables[name]
        if match.group(2) == "sqlstring":
            return "'" + value.replace("'", "''") + "'"
        assert match.group(2) is None, match.group(0)
        return value

    sql = re.sub(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)", variable, sql)
    assert "$" not in sql, sql
    return sql


def defaults(dashboard: dict[str, Any]) -> dict[str, str]:
    """The textbox variables' values as shipped."""
    return {
        v["name"]: v["query"] for v in dashboard["templating"]["list"] if v["type"] == "textbox"
    }


START = datetime(2026, 3, 1, tzinfo=UTC)
# Compliance per day of March (03-20 has a breach only: no point).
DAYS = [(2, 1.0), (5, 1.0), (6, 0.0), (10, 0.0), (11, 0.0), (15, 1.0), (31, 1.0)]
END = datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC)

# By hand, from the outcomes of test_report_views over 2026-03-01 .. 2026-03-31 23:59:59
# (compliance_by_organization counts whole days; day = 03-31 00:00 is inside the range).
EXPECTED: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {
    "Worst organizations": (
        ["organization", "completions", "met", "breached", "breaches", "compliance"],
        [
            ("Globex", 3, 1, 2, 3, 1 / 3),
            ("Acme", 4, 3, 1, 1, 0.75),
            ("(unknown)", 1, 1, 0, 0, 1.0),
        ],
    ),
    "Compliance over time": (
        ["time", "compliance"],
        [(datetime(2026, 3, day, tzinfo=UTC), compliance) for day, compliance in DAYS],
    ),
    # [churn]'s defaults (90 days, 3, 0.8, 48 hours) ending at the range's end, 03-31 23:59:59:
    # t4 stopped at that very second, outside [end - 90 days, end). carla: 4 breaches (t9 in
    # January counts), 0 of 2 met; bob 1 of 2; Acme 3 of 4 (75% < 80%); Globex 0 of 2 and
    # carla's breaches. No completion waited 48 hours.
    "At risk of churning": (
        ["kind", "name", "breaches", "completions", "compliance", "longest_wait", "reasons"],
        [
            ("customer", "carla", 4, 2, 0.0, 5000.0, "breaches, compliance"),
            ("customer", "bob", 1, 2, 0.5, 9000.0, "compliance"),
            ("organization", "Globex", 4, 2, 0.0, 5000.0, "breaches, compliance"),
            ("organization", "Acme", 1, 4, 0.75, 9000.0, "compliance"),
        ],
    ),
    "Compliance of $customer": (["compliance"], [(0.0,)]),  # carla: t3's two clocks missed
    # carla's March breaches (January's t9 is before the range), the newest first; t8 is open.
    "Breach history of $customer": (
        ["time", "ticket", "clock", "priority", "queue", "policy", "organization", "completed"],
        [
            (datetime(2026, 3, 20, 8, tzinfo=UTC), "t8", "first_response", *rest, False)
            for rest in [("normal", "support", "default", "Globex")]
        ]
        + [
            (datetime(2026, 3, 11, 8, tzinfo=UTC), "t3", "resolution", *rest, True)
            for rest in [("normal", "support", "default", "Globex")]
        ]
        + [
            (datetime(2026, 3, 10, 8, tzinfo=UTC), "t3", "first_response", *rest, True)
            for rest in [("normal", "support", "default", "Globex")]
        ],
    ),
}


async def test_every_panel_query_answers_the_expected_rows(database_dsn: str) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = defaults(dashboard) | {"customer": "carla"}
    pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=2)
    try:
        await insert_outcomes(pool)
        answers: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {}
        async with pool.acquire() as conn:
            for panel in dashboard["panels"]:
                for target in panel.get("targets", []):
                    sql = grafana_sql(target["rawSql"], variables, START, END)
                    statement = await conn.prepare(sql)
                    columns = [attribute.name for attribute in statement.get_attributes()]
                    rows = [tuple(row) for row in await statement.fetch()]
                    answers[panel["title"]] = (columns, rows)
            [customer] = [v for v in dashboard["templating"]["list"] if v["name"] == "customer"]
            choices = await conn.fetch(grafana_sql(customer["query"], variables, START, END))
            # A customer whose name needs quoting is a value, never SQL.
            quoted = grafana_sql(
                next(p for p in dashboard["panels"] if p["title"] == "Compliance of $customer")[
                    "targets"
                ][0]["rawSql"],
                variables | {"customer": "o'brien'); DROP TABLE sla_monitor.breaches; --"},
                START,
                END,
            )
            assert [tuple(r) for r in await conn.fetch(quoted)] == [(None,)]
            assert await conn.fetchval("SELECT count(*) FROM sla_monitor.breaches") == 5
    finally:
        await pool.close()
    assert answers == EXPECTED
    # The other source's bob is not a choice twice; kim has no organization but is a customer.
    assert [r[0] for r in choices] == ["ann", "bob", "carla", "dev", "kim"]


def test_the_dashboard_asks_for_the_churn_rules_with_their_defaults() -> None:
    from sla_monitor.schema import ChurnSettings

    rules = defaults(json.loads(DASHBOARD.read_text()))
    churn = ChurnSettings()
    assert rules["window"] == f"{churn.window / 86400:g} days"
    assert rules["min_breaches"] == str(churn.min_breaches)
    assert rules["min_compliance"] == str(churn.min_compliance)
    assert rules["max_wait"] == f"{churn.max_wait / 3600:g} hours"

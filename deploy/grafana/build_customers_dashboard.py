"""Builds deploy/grafana/sla-monitor-customers.json (run: python
deploy/grafana/build_customers_dashboard.py).

The per-customer dashboard reads the daemon's own schema through Grafana's PostgreSQL data
source: the views of migration 0009 (compliance_by_organization, customers_at_risk_in) and the
breaches and completions tables. Kept as code so every panel's SQL stays reviewable;
tests/deploy/test_grafana_postgres.py runs each one, with Grafana's macros and variables
substituted, against a real PostgreSQL holding the migrated schema and asserts its rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from build_dashboard import lay_out

DS = {"type": "grafana-postgresql-datasource", "uid": "${datasource}"}

# The schema is an identifier and goes in as typed (validated to [a-z_][a-z0-9_]* by the
# daemon's configuration); every value goes in through Grafana's sqlstring format, quoted.
SOURCE = "source = ${source:sqlstring}"
RULES = (
    "${window:sqlstring}::interval, ${min_breaches:sqlstring}::integer, "
    "${min_compliance:sqlstring}::double precision, ${max_wait:sqlstring}::interval, "
    "$__timeTo()::timestamptz"
)

PANELS: list[dict[str, Any]] = [
    {"row": "Organizations"},
    {
        "title": "Worst organizations",
        "type": "table",
        "width": 24,
        "description": "Completions in the range per organization, the lowest compliance first "
        "(met / completions, as `sla-monitor report --by organization`; whole UTC days). "
        "breaches: clocks that crossed their target, completed or not.",
        "units": {"compliance": "percentunit"},
        "sql": f"""SELECT organization,
       sum(completions)::bigint AS completions,
       sum(met)::bigint AS met,
       sum(breached)::bigint AS breached,
       sum(breaches)::bigint AS breaches,
       sum(met)::double precision / nullif(sum(completions), 0) AS compliance
FROM ${{schema}}.compliance_by_organization
WHERE {SOURCE} AND $__timeFilter(day)
GROUP BY organization
ORDER BY compliance ASC NULLS LAST, breaches DESC, organization
LIMIT 20""",
    },
    {
        "title": "Compliance over time",
        "type": "timeseries",
        "width": 12,
        "description": "Met / completions per UTC day, every organization and clock.",
        "units": {"compliance": "percentunit"},
        "format": "time_series",
        "sql": f"""SELECT day AS time,
       sum(met)::double precision / sum(completions) AS compliance
FROM ${{schema}}.compliance_by_organization
WHERE {SOURCE} AND $__timeFilter(day)
GROUP BY day
HAVING sum(completions) > 0
ORDER BY day""",
    },
    {
        "title": "At risk of churning",
        "type": "table",
        "width": 12,
        "description": "Customers and organizations at risk at the end of the range, by the "
        "rules of the dashboard's variables (set them to your [churn] section): at least "
        "min_breaches breached clocks, a compliance below min_compliance, or a completion "
        "longer than max_wait, in the window.",
        "units": {"compliance": "percentunit", "longest_wait": "s"},
        "sql": f"""SELECT kind, name, breaches, completions, compliance,
       longest_wait_seconds AS longest_wait,
       array_to_string(reasons, ', ') AS reasons
FROM ${{schema}}.customers_at_risk_in({RULES})
WHERE {SOURCE}
ORDER BY kind, cardinality(reasons) DESC, breaches DESC, name""",
    },
    {"row": "Customer $customer"},
    {
        "title": "Compliance of $customer",
        "type": "stat",
        "width": 6,
        "description": "Met / completions of the customer's clocks stopped in the range.",
        "units": {"compliance": "percentunit"},
        "sql": f"""SELECT count(*) FILTER (WHERE met)::double precision / nullif(count(*), 0)
       AS compliance
FROM ${{schema}}.completions
WHERE {SOURCE} AND customer = ${{customer:sqlstring}} AND $__timeFilter(stopped_at)""",
    },
    {
        "title": "Breach history of $customer",
        "type": "table",
        "width": 18,
        "description": "Every clock of the customer's tickets that crossed its target in the "
        "range, the newest first; completed: the clock has stopped since (late).",
        "units": {},
        "sql": f"""SELECT b.breached_at AS time, b.ticket_id AS ticket, b.clock, b.priority,
       b.queue, b.policy, b.organization,
       EXISTS (SELECT 1 FROM ${{schema}}.completions c
               WHERE c.source = b.source AND c.ticket_id = b.ticket_id
                 AND c.clock = b.clock AND c.window_key = b.window_key) AS completed
FROM ${{schema}}.breaches b
WHERE b.{SOURCE} AND b.customer = ${{customer:sqlstring}} AND $__timeFilter(b.breached_at)
ORDER BY b.breached_at DESC, b.ticket_id, b.clock""",
    },
]

# The customer variable's choices: every customer with a recorded outcome.
CUSTOMERS = f"""SELECT customer FROM ${{schema}}.breaches
WHERE {SOURCE} AND customer IS NOT NULL
UNION
SELECT customer FROM ${{schema}}.completions
WHERE {SOURCE} AND customer IS NOT NULL
ORDER BY 1"""


def _textbox(name: str, label: str, value: str, description: str) -> dict[str, Any]:
    return {
        "type": "textbox",
        "name": name,
        "label": label,
        "description": description,
        "query": value,
        "current": {"text": value, "value": value},
        "hide": 0,
    }


def _panel(spec: dict[str, Any], panel_id: int, grid_pos: dict[str, int]) -> dict[str, Any]:
    return {
        "type": spec["type"],
        "title": spec["title"],
        "description": spec["description"],
        "id": panel_id,
        "datasource": DS,
        "gridPos": grid_pos,
        "fieldConfig": {
            "defaults": {},
            "overrides": [
                {
                    "matcher": {"id": "byName", "options": column},
                    "properties": [{"id": "unit", "value": unit}],
                }
                for column, unit in spec["units"].items()
            ],
        },
        "targets": [
            {
                "refId": "A",
                "datasource": DS,
                "editorMode": "code",
                "rawQuery": True,
                "format": spec.get("format", "table"),
                "rawSql": spec["sql"],
            }
        ],
    }


def build() -> dict[str, Any]:
    panels = lay_out(PANELS, 9, lambda spec: int(spec["width"]), _panel)
    return {
        "title": "sla-monitor: customers and organizations",
        "uid": "sla-monitor-customers",
        "schemaVersion": 39,
        "version": 1,
        "tags": ["sla-monitor", "support", "customers"],
        "time": {"from": "now-30d", "to": "now"},
        "refresh": "5m",
        "panels": panels,
        "templating": {
            "list": [
                {
                    "type": "datasource",
                    "name": "datasource",
                    "label": "PostgreSQL",
                    "query": "grafana-postgresql-datasource",
                },
                _textbox("schema", "Schema", "sla_monitor", "the daemon's [database] schema_name"),
                _textbox("source", "Source", "helpdesk", "the [source] name"),
                {
                    "type": "query",
                    "name": "customer",
                    "label": "Customer",
                    "datasource": DS,
                    "query": CUSTOMERS,
                    "definition": CUSTOMERS,
                    "refresh": 2,
                    "multi": False,
                    "includeAll": False,
                    "sort": 0,
                },
                _textbox("window", "Churn window", "90 days", "[churn] window"),
                _textbox("min_breaches", "Min breaches", "3", "[churn] min_breaches"),
                _textbox("min_compliance", "Min compliance", "0.8", "[churn] min_compliance"),
                _textbox("max_wait", "Max wait", "48 hours", "[churn] max_wait"),
            ]
        },
    }


if __name__ == "__main__":
    target = Path(__file__).with_name("sla-monitor-customers.json")
    target.write_text(json.dumps(build(), indent=2) + "\n")
    print(f"wrote {target}")

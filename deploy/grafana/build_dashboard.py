"""Builds deploy/grafana/sla-monitor.json (run: python deploy/grafana/build_dashboard.py).

The dashboard is kept as code so every panel's query stays reviewable; the test
tests/deploy/test_deploy.py runs each query against a real Prometheus.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

DS = {"type": "prometheus", "uid": "${datasource}"}


def one(expr: str) -> str:
    """A gauge every replica of an active/standby pair exports alike (open tickets, the
    tracker), once: the replicas' series differ only by ``instance``. Counters that move on
    recording (breaches, completions, deliveries) are moved by the leader alone, each row
    once whichever replica recorded it, so they are summed as they are."""
    return f"max without(instance) ({expr})"


def sel(extra: str = "") -> str:
    """A label selector with the dashboard's priority and queue filters."""
    inner = 'priority=~"$priority", queue=~"$queue"'
    return "{" + (f"{extra}, " if extra else "") + inner + "}"


PANELS: list[dict[str, Any]] = [
    {"row": "Compliance"},
    {
        "title": "Compliance over the range, by clock",
        "type": "stat",
        "unit": "percent",
        "description": "Share of stopped clocks that met their target in the selected range "
        "(next_reply: answered customer-message windows, when a policy sets it).",
        "targets": [
            (
                "100 * sum by (clock) (increase(sla_monitor_sla_completed_total"
                + sel('outcome="met"')
                + "[$__range])) / sum by (clock) "
                "(increase(sla_monitor_sla_completed_total" + sel() + "[$__range]))",
                "{{clock}}",
            )
        ],
    },
    {
        "title": "Compliance by clock and priority",
        "type": "bargauge",
        "unit": "percent",
        "targets": [
            (
                "100 * sum by (clock, priority) (increase(sla_monitor_sla_completed_total"
                + sel('outcome="met"')
                + "[$__range])) / sum by (clock, priority) "
                "(increase(sla_monitor_sla_completed_total" + sel() + "[$__range]))",
                "{{clock}} {{priority}}",
            )
        ],
    },
    {
        "title": "Breaches over time",
        "type": "timeseries",
        "unit": "short",
        "targets": [
            (
                "sum by (clock) (increase(sla_monitor_breaches_total"
                + sel()
                + "[$__rate_interval]))",
                "{{clock}}",
            )
        ],
    },
    {"row": "Open tickets"},
    {
        "title": "Breached now",
        "type": "stat",
        "unit": "short",
        "targets": [
            (
                "sum by (clock) ("
                + one("sla_monitor_open_tickets" + sel('state="breached"'))
                + ")",
                "{{clock}}",
            )
        ],
    },
    {
        "title": "At risk now",
        "type": "stat",
        "unit": "short",
        "targets": [
            (
                "sum by (clock) (" + one("sla_monitor_open_tickets" + sel('state="at_risk"')) + ")",
                "{{clock}}",
            )
        ],
    },
    {
        "title": "First response: open tickets by state",
        "type": "timeseries",
        "unit": "short",
        "targets": [
            (
                "sum by (state) ("
                + one("sla_monitor_open_tickets" + sel('clock="first_response"'))
                + ")",
                "{{state}}",
            )
        ],
    },
    {
        "title": "Next reply: open tickets by state",
        "type": "timeseries",
        "unit": "short",
        "description": "Tickets with a customer message not yet answered (policies with "
        "next_reply set).",
        "targets": [
            (
                "sum by (state) ("
                + one("sla_monitor_open_tickets" + sel('clock="next_reply"'))
                + ")",
                "{{state}}",
            )
        ],
    },
    {
        "title": "Paused too long now",
        "type": "stat",
        "unit": "short",
        "description": "Open tickets paused longer than their policy's max_pause.",
        "targets": [("sum(" + one("sla_monitor_paused_too_long" + sel()) + ")", "paused too long")],
    },
    {
        "title": "Customers owed an update",
        "type": "timeseries",
        "unit": "short",
        "targets": [
            (
                "sum by (queue) ("
                + one("sla_monitor_open_tickets" + sel('clock="update", state="breached"'))
                + ")",
                "{{queue}}",
            )
        ],
    },
    {"row": "Speed"},
    {
        "title": "First response time (p50, p90)",
        "type": "timeseries",
        "unit": "s",
        "targets": [
            (
                f"histogram_quantile({q}, sum by (le) ("
                "rate(sla_monitor_first_response_seconds_bucket" + sel() + "[$__range])))",
                f"p{int(q * 100)}",
            )
            for q in (0.5, 0.9)
        ],
    },
    {
        "title": "Resolution time (p50, p90)",
        "type": "timeseries",
        "unit": "s",
        "targets": [
            (
                f"histogram_quantile({q}, sum by (le) (rate(sla_monitor_resolution_seconds_bucket"
                + sel()
                + "[$__range])))",
                f"p{int(q * 100)}",
            )
            for q in (0.5, 0.9)
        ],
    },
    {
        "title": "Next reply time (p50, p90)",
        "type": "timeseries",
        "unit": "s",
        "targets": [
            (
                f"histogram_quantile({q}, sum by (le) (rate(sla_monitor_next_reply_seconds_bucket"
                + sel()
                + "[$__range])))",
                f"p{int(q * 100)}",
            )
            for q in (0.5, 0.9)
        ],
    },
    {"row": "Escalations and customer updates"},
    {
        "title": "Escalation deliveries",
        "type": "timeseries",
        "unit": "short",
        "description": "Triggers and resolves sent to Alertmanager, PagerDuty, Slack or the "
        "webhook, by level, channel and result (failed ones are retried).",
        "targets": [
            (
                "sum by (level, channel, result) (increase(sla_monitor_escalations_total"
                "[$__rate_interval]))",
                "{{level}} {{channel}} {{result}}",
            )
        ],
    },
    {
        "title": "Customer progress updates",
        "type": "timeseries",
        "unit": "short",
        "targets": [
            (
                "sum by (result) (increase(sla_monitor_customer_updates_total[$__rate_interval]))",
                "{{result}}",
            )
        ],
    },
    {
        "title": "Outbox backlog",
        "type": "timeseries",
        "unit": "short",
        "targets": [
            # The leader's senders tell it; a standby exports 0.
            ("max(sla_monitor_outbox_pending)", "pending"),
            ("max(sla_monitor_outbox_oldest_pending_age_seconds)", "oldest age (s)"),
        ],
    },
    {"row": "Daemon health"},
    {
        "title": "Helpdesk reachable",
        "type": "stat",
        "unit": "bool_yes_no",
        "targets": [("min(sla_monitor_source_up)", "source up")],
    },
    {
        "title": "Seconds since the last good poll",
        "type": "stat",
        "unit": "s",
        "targets": [("time() - max(sla_monitor_last_successful_poll_timestamp_seconds)", "age")],
    },
    {
        "title": "Poll duration (p99)",
        "type": "timeseries",
        "unit": "s",
        "targets": [
            (
                "histogram_quantile(0.99, sum by (le) "
                "(rate(sla_monitor_poll_duration_seconds_bucket[$__rate_interval])))",
                "p99",
            )
        ],
    },
    {
        "title": "Bad helpdesk rows",
        "type": "timeseries",
        "unit": "short",
        "targets": [
            (
                # Every replica reads (and counts) the same bad rows.
                "sum by (reason) ("
                + one("increase(sla_monitor_bad_rows_total[$__rate_interval])")
                + ")",
                "{{reason}}",
            )
        ],
    },
    {
        "title": "Tracked open tickets",
        "type": "stat",
        "unit": "short",
        "targets": [("sum(" + one("sla_monitor_tracked_tickets") + ")", "tracked")],
    },
    {
        "title": "Leading replica",
        "type": "stat",
        "unit": "short",
        "description": "1 on the replica that records and delivers, 0 on a standby (see "
        "README, Running two replicas).",
        "targets": [("sla_monitor_leader", "{{instance}}")],
    },
]


def lay_out(
    specs: list[dict[str, Any]],
    height: int,
    width_of: Callable[[dict[str, Any]], int],
    panel_of: Callable[[dict[str, Any], int, dict[str, int]], dict[str, Any]],
) -> list[dict[str, Any]]:
    """Grafana's grid, 24 units wide: panels left to right, a new line when one does not fit,
    a row header for each ``{"row": title}`` spec. ``panel_of(spec, id, grid_pos)``."""
    panels: list[dict[str, Any]] = []
    y, x, panel_id = 0, 0, 1
    for spec in specs:
        if "row" in spec:
            y += 1 if x == 0 else 9
            x = 0
            panels.append(
                {
                    "type": "row",
                    "title": spec["row"],
                    "id": panel_id,
                    "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                    "collapsed": False,
                }
            )
            panel_id += 1
            y += 1
            continue
        width = width_of(spec)
        if x + width > 24:
            x, y = 0, y + height
        panels.append(panel_of(spec, panel_id, {"h": height, "w": width, "x": x, "y": y}))
        panel_id += 1
        x += width
    return panels


def _panel(spec: dict[str, Any], panel_id: int, grid_pos: dict[str, int]) -> dict[str, Any]:
    return {
        "type": spec["type"],
        "title": spec["title"],
        "description": spec.get("description", ""),
        "id": panel_id,
        "datasource": DS,
        "gridPos": grid_pos,
        "fieldConfig": {"defaults": {"unit": spec["unit"]}, "overrides": []},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DS,
                "expr": expr,
                "legendFormat": legend,
            }
            for i, (expr, legend) in enumerate(spec["targets"])
        ],
    }


def build() -> dict[str, Any]:
    panels = lay_out(PANELS, 8, lambda spec: 6 if spec["type"] == "stat" else 12, _panel)
    variable = {
        "type": "query",
        "datasource": DS,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "refresh": 2,
        "current": {"text": "All", "value": "$__all"},
    }
    return {
        "title": "sla-monitor: support SLAs",
        "uid": "sla-monitor",
        "schemaVersion": 39,
        "version": 1,
        "tags": ["sla-monitor", "support"],
        "time": {"from": "now-7d", "to": "now"},
        "refresh": "1m",
        "panels": panels,
        "templating": {
            "list": [
                {
                    "type": "datasource",
                    "name": "datasource",
                    "label": "Prometheus",
                    "query": "prometheus",
                },
                {
                    **variable,
                    "name": "priority",
                    "label": "Priority",
                    "query": "label_values(sla_monitor_open_tickets, priority)",
                },
                {
                    **variable,
                    "name": "queue",
                    "label": "Queue",
                    "query": "label_values(sla_monitor_open_tickets, queue)",
                },
            ]
        },
    }


if __name__ == "__main__":
    target = Path(__file__).with_name("sla-monitor.json")
    target.write_text(json.dumps(build(), indent=2) + "\n")
    print(f"wrote {target}")

"""The deployment files, checked with the real tools: systemd-analyze, promtool, and a real
Prometheus scraping a running daemon that runs every dashboard and rule query."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml

from sla_monitor.sources.sql import REFERENCE_SCHEMA
from tests.integration.peers import free_port, require_binary
from tests.integration.test_cli import _wait_ready, spawn_daemon

ROOT = Path(__file__).parents[2]
UNIT = ROOT / "deploy" / "systemd" / "sla-monitor.service"
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "sla-monitor.json"


def test_unit_verifies() -> None:
    analyze = require_binary(("systemd-analyze",), "systemd")
    with tempfile.TemporaryDirectory() as tmp:
        # verify insists that ExecStart exists: point it at this checkout's command.
        unit = Path(tmp) / "sla-monitor.service"
        command = Path(sys.executable).with_name("sla-monitor")
        unit.write_text(UNIT.read_text().replace("/opt/sla-monitor/bin/sla-monitor", str(command)))
        result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # verify also loads the units ours depends on; their own complaints are not ours.
    ours = [line for line in result.stderr.splitlines() if "sla-monitor.service" in line]
    assert ours == []


def test_unit_security_exposure_is_at_most_2() -> None:
    analyze = require_binary(("systemd-analyze",), "systemd")
    result = subprocess.run(
        [analyze, "security", "--offline=true", str(UNIT)], capture_output=True, text=True
    )
    match = re.search(r"Overall exposure level for sla-monitor.service: ([\d.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0


def test_unit_keeps_the_contract_with_the_daemon() -> None:
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "RestartPreventExitStatus=78",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "LoadCredential=dsn:",
        "SLA_MONITOR_DATABASE__DSN_FILE=%d/dsn",
    ):
        assert line in text


def test_rules_pass_promtool() -> None:
    promtool = require_binary(("promtool",), "prometheus")
    result = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 20 rules found" in result.stdout


def test_dashboard_is_current_with_its_builder() -> None:
    sys.path.insert(0, str(DASHBOARD.parent))
    try:
        import build_dashboard
    finally:
        sys.path.pop(0)
    assert json.loads(DASHBOARD.read_text()) == build_dashboard.build()


# --- a real Prometheus scraping a running daemon --------------------------------------------


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def rule_queries() -> list[tuple[str, str, bool]]:
    """(name, expression, is_alert) of every rule in rules.yml."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [
        (rule.get("record") or rule["alert"], rule["expr"], "alert" in rule)
        for group in groups
        for rule in group["rules"]
    ]


def concrete(expr: str) -> str:
    return (
        expr.replace("$__rate_interval", "1m")
        .replace("$__range", "1h")
        .replace("$priority", ".*")
        .replace("$queue", ".*")
    )


class Prometheus:
    def __init__(self, binary: str, target_port: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = Path(tempfile.mkdtemp(prefix="sla-prom-"))
        rules = self.dir / "rules.yml"
        rules.write_text(RULES.read_text().replace("interval: 1m", "interval: 1s"))
        config = self.dir / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"rule_files: [{rules}]\n"
            "scrape_configs:\n  - job_name: sla-monitor\n"
            # The daemon scraped twice, as instances "a" and "b": a pair of replicas whose
            # gauges agree (README, "Running two replicas").
            f"    static_configs: [{{targets: ['127.0.0.1:{target_port}'], labels: {{__r: a}}}},\n"
            f"                     {{targets: ['127.0.0.1:{target_port}'], labels: {{__r: b}}}}]\n"
            "    relabel_configs: [{source_labels: [__r], target_label: instance}]\n"
        )
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def get(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as response:
            return json.loads(response.read())

    def query(self, expr: str) -> dict[str, Any]:
        try:
            return dict(self.get("/api/v1/query", query=expr))
        except urllib.error.HTTPError as error:
            return dict(json.loads(error.read()))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
async def running_daemon(database_dsn: str, tmp_path: Path) -> AsyncIterator[int]:
    now = datetime.now(UTC)
    conn = await asyncpg.connect(database_dsn)
    await conn.execute(REFERENCE_SCHEMA)

    async def ticket(age: float, priority: str = "normal", status: str = "new") -> int:
        return int(
            await conn.fetchval(
                "INSERT INTO helpdesk.tickets (created_at, priority, status, queue) "
                "VALUES ($1, $2, $3, 'hosting') RETURNING id",
                now - timedelta(minutes=age),
                priority,
                status,
            )
        )

    async def event(ticket_id: int, age: float, kind: str, value: str | None = None) -> None:
        await conn.execute(
            "INSERT INTO helpdesk.ticket_events (ticket_id, kind, new_value, "
            "created_at) VALUES ($1, $2, $3, $4)",
            ticket_id,
            kind,
            value,
            now - timedelta(minutes=age),
        )

    await ticket(120)  # breached
    await ticket(50, "high")  # at risk
    answered = await ticket(300, status="open")
    await event(answered, 290, "public_reply")  # and owed an update
    solved = await ticket(600, "urgent", status="resolved")
    await event(solved, 580, "public_reply")
    await event(solved, 10, "status_change", "resolved")
    asked = await ticket(200, status="open")  # a customer message answered late: next_reply
    await event(asked, 190, "public_reply")
    await event(asked, 180, "customer_message")
    await event(asked, 20, "public_reply")
    await ticket(5, "p0")  # a bad row
    await conn.close()
    config = tmp_path / "c.toml"
    config.write_text(
        '[source]\nbackfill = "1d"\n[policies.default]\nnext_reply = "2h"\n'
        "[escalation]\nenabled = true\n"
        '[escalation.channels.alertmanager]\nurl = "http://127.0.0.1:9"\n'
    )
    port = free_port()
    process = spawn_daemon(database_dsn, port, config)
    try:
        _wait_ready(port, process)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


# Panels and rules whose result is rightly empty with this data set, and why.
ALLOWED_EMPTY: dict[str, str] = {}


def test_every_dashboard_and_rule_query_runs_on_real_prometheus(running_daemon: int) -> None:
    prometheus = Prometheus(require_binary(("prometheus",), "prometheus"), running_daemon)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                scrapes = prometheus.query('count_over_time(up{job="sla-monitor"}[1m])')
                rules = prometheus.get("/api/v1/rules")["data"]["groups"]
                evaluated = all(
                    r.get("lastEvaluation", "").startswith("20")
                    and not r["lastEvaluation"].startswith("0001")
                    for g in rules
                    for r in g["rules"]
                )
                result = scrapes.get("data", {}).get("result", [])
                if result and float(result[0]["value"][1]) >= 8 and evaluated:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            raise AssertionError("prometheus never scraped the daemon eight times")

        failures = []
        for title, expr in dashboard_queries():
            answer = prometheus.query(concrete(expr))
            if answer.get("status") != "success":
                failures.append(f"panel {title!r}: {answer.get('error')}")
            elif not answer["data"]["result"] and title not in ALLOWED_EMPTY:
                failures.append(f"panel {title!r}: empty result for {concrete(expr)}")
        for name, expr, is_alert in rule_queries():
            answer = prometheus.query(expr)
            if answer.get("status") != "success":
                failures.append(f"rule {name}: {answer.get('error')}")
            elif not is_alert and not answer["data"]["result"]:
                failures.append(f"recording rule {name}: empty result")
        groups = prometheus.get("/api/v1/rules")["data"]["groups"]
        names = {r["name"] for g in groups for r in g["rules"]}
        assert names == {name for name, _, _ in rule_queries()}
        for group in groups:
            for rule in group["rules"]:
                if rule["health"] != "ok":
                    failures.append(f"rule {rule['name']}: {rule.get('lastError')}")
        assert failures == []
        assert len(dashboard_queries()) == 25 and len(rule_queries()) == 20

        # Two replicas export the same gauges: the dashboard and the rules count them once.
        def value(expr: str) -> float:
            result = prometheus.query(concrete(expr))["data"]["result"]
            return sum(float(r["value"][1]) for r in result)

        tracked = dict(dashboard_queries())["Tracked open tickets"]
        assert value("count(sla_monitor_tracked_tickets)") == 2
        assert value(tracked) == value('sla_monitor_tracked_tickets{instance="a"}') > 0
        breached = 'sla_monitor_open_tickets{state="breached", instance="a"}'
        assert value("sla_monitor:open_tickets_breached:sum") == value(breached) > 0
        assert value("sum(sla_monitor_leader)") == 2  # one daemon, scraped twice

    finally:
        prometheus.stop()

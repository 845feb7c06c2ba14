"""The `sla-monitor` command as a user runs it: real processes, a real PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from sla_monitor.sources.sql import REFERENCE_SCHEMA
from sla_monitor.store import migration_versions

pytestmark = pytest.mark.integration
EX_CONFIG = 78


def sla_monitor(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sla_monitor", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(env),
    )


def spawn_daemon(
    database_dsn: str,
    port: int,
    config: Path | None = None,
    env: dict[str, str] | None = None,
    capture: bool = False,
) -> subprocess.Popen[str]:
    """`sla-monitor run` as a real process on ``port``, against ``database_dsn``."""
    arguments = [sys.executable, "-m", "sla_monitor"]
    if config is not None:
        arguments += ["--config", str(config)]
    output = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.Popen(
        [*arguments, "run"],
        env=_env(
            {
                "SLA_MONITOR_DATABASE__DSN": database_dsn,
                "SLA_MONITOR_DAEMON__LISTEN_PORT": str(port),
                **(env or {}),
            }
        ),
        stdout=output,
        stderr=output,
        text=True,
    )


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLA_MONITOR_")}
    env.update(extra or {})
    return env


def test_check_config_accepts_the_shipped_example() -> None:
    result = sla_monitor("--config", "config/sla-monitor.toml", "check-config")
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            '[policies.default]\nfirst_response = "soon"\n',
            "policies.default.first_response: expected a duration",
        ),
        ("[daemon]\nlisten_port = 99999\n", "daemon.listen_port"),
        ('[policies.urgent]\npriorities = ["p1"]\n', "a policy named 'default' is required"),
        (
            '[policies.default]\n[policies.vip]\npriorities = ["p1"]\n',
            "policies.vip.priorities: 'p1' is not one of the configured priorities",
        ),
        (
            '[statuses]\nopen = ["new"]\npaused = ["new"]\n',
            "status 'new' is listed in both 'open' and 'paused'",
        ),
        ('[daemon]\npoll_intervall = "5s"\n', "daemon.poll_intervall: Extra inputs"),
        ("[daemon\n", "is not valid TOML"),
    ],
)
def test_bad_configuration_exits_78_naming_file_and_field(
    tmp_path: Path, toml: str, expected: str
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    result = sla_monitor("--config", str(config), "check-config")
    assert result.returncode == EX_CONFIG
    assert str(config) in result.stderr
    assert expected in result.stderr


def test_bad_environment_override_exits_78() -> None:
    result = sla_monitor("check-config", env={"SLA_MONITOR_DAEMON__POLL_INTERVAL": "often"})
    assert result.returncode == EX_CONFIG
    assert "daemon.poll_interval" in result.stderr


def test_missing_config_file_exits_78(tmp_path: Path) -> None:
    result = sla_monitor("--config", str(tmp_path / "absent.toml"), "run")
    assert result.returncode == EX_CONFIG
    assert "does not exist" in result.stderr


def test_dsn_is_never_printed_in_errors(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[database]\ndsn = 42\n[daemon]\nlisten_port = "x"\n')
    result = sla_monitor(
        "--config",
        str(config),
        "check-config",
        env={"SLA_MONITOR_DATABASE__DSN": "postgresql://u:hunter2@h/db"},
    )
    assert result.returncode == EX_CONFIG
    assert "hunter2" not in result.stderr


async def test_evaluate_json_reports_the_states_of_the_semantics(database_dsn: str) -> None:
    now = datetime.now(UTC)
    conn = await asyncpg.connect(database_dsn)
    await conn.execute(REFERENCE_SCHEMA)

    async def ticket(age_minutes: float, status: str = "new") -> str:
        return str(
            await conn.fetchval(
                "INSERT INTO helpdesk.tickets (subject, status, created_at) VALUES ('s', $1, $2)"
                " RETURNING id",
                status,
                now - timedelta(minutes=age_minutes),
            )
        )

    async def event(
        ticket_id: str,
        age_minutes: float,
        kind: str,
        value: str | None = None,
        old: str | None = None,
    ) -> None:
        await conn.execute(
            "INSERT INTO helpdesk.ticket_events (ticket_id, kind, new_value, old_value,"
            " created_at) VALUES ($1, $2, $3, $4, $5)",
            int(ticket_id),
            kind,
            value,
            old,
            now - timedelta(minutes=age_minutes),
        )

    fresh = await ticket(10)
    at_risk = await ticket(50)
    breached = await ticket(120)
    await event(breached, 100, "internal_note")  # a note is not a response
    answered = await ticket(300, status="open")
    await event(answered, 280, "public_reply")
    waiting = await ticket(30, status="pending")
    await event(waiting, 20, "status_change", "pending", "new")
    resolved = await ticket(30, status="resolved")
    await conn.close()

    result = sla_monitor("evaluate", "--json", env={"SLA_MONITOR_DATABASE__DSN": database_dsn})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    by_id = {t["ticket_id"]: t["clocks"] for t in report["tickets"]}
    assert resolved not in by_id
    assert by_id[fresh]["first_response"]["state"] == "ok"
    remaining = by_id[fresh]["first_response"]["remaining_seconds"]
    assert 49 * 60 < remaining <= 50 * 60
    deadline = datetime.fromisoformat(by_id[fresh]["first_response"]["deadline"])
    assert abs(deadline - (now + timedelta(minutes=50))) < timedelta(seconds=1)
    assert by_id[at_risk]["first_response"]["state"] == "at_risk"
    assert by_id[breached]["first_response"]["state"] == "breached"
    assert by_id[breached]["first_response"]["remaining_seconds"] < -59 * 60
    assert by_id[answered]["first_response"]["state"] == "met"
    assert by_id[answered]["update"]["state"] == "breached"  # 280 min without news
    assert by_id[answered]["resolution"]["state"] == "ok"
    assert by_id[waiting]["first_response"]["state"] == "paused"
    assert by_id[waiting]["first_response"]["deadline"] is None
    assert report["bad_rows"] == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_run_serves_metrics_and_stops_cleanly_on_sigterm(database_dsn: str) -> None:
    conn = await asyncpg.connect(database_dsn)
    await conn.execute(REFERENCE_SCHEMA)
    await conn.execute("INSERT INTO helpdesk.tickets (subject) VALUES ('hello')")
    await conn.close()
    port = _free_port()
    process = spawn_daemon(database_dsn, port, capture=True)
    try:
        body = _wait_ready(port, process)
        assert json.loads(body)["tracked"] == 1
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            metrics = response.read().decode()
        assert "sla_monitor_tracked_tickets 1.0" in metrics
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=5)  # the systemd contract: stop within 5 s
        assert process.returncode == 0
        _, stderr = process.communicate()
        lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
        assert lines[-1]["event"] == "stopped"
        assert database_dsn not in stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _wait_ready(port: int, process: subprocess.Popen[str]) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                return str(r.read().decode())
        except OSError:
            time.sleep(0.1)
    raise AssertionError("daemon never became ready")


def test_without_a_dsn_the_embedded_postgres_is_used(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
    env = {"SLA_MONITOR_DATABASE__EMBEDDED_DATA_DIR": str(data_dir)}
    first = sla_monitor("migrate", env=env, timeout=120)
    assert first.returncode == 0, first.stderr
    assert f"applied: {migration_versions()}" in first.stdout
    assert (data_dir / "PG_VERSION").exists()
    again = sla_monitor("migrate", env=env, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "applied: none" in again.stdout


async def test_evaluate_shows_business_hours_deadlines(database_dsn: str, tmp_path: Path) -> None:
    """Created Friday 18:00 before Whit Monday (a German public holiday) in an office open
    Mon-Fri 09:00-17:00 Berlin time: by hand, the 1 h first response is due Tuesday 10:00,
    the 8 h resolution Tuesday 17:00; an urgent ticket on the 24/7 calendar is due at 19:00."""
    berlin = ZoneInfo("Europe/Berlin")
    friday = datetime(2026, 5, 22, 18, 0, tzinfo=berlin)
    conn = await asyncpg.connect(database_dsn)
    await conn.execute(REFERENCE_SCHEMA)
    normal = await conn.fetchval(
        "INSERT INTO helpdesk.tickets (created_at) VALUES ($1) RETURNING id::text", friday
    )
    urgent = await conn.fetchval(
        "INSERT INTO helpdesk.tickets (created_at, priority) "
        "VALUES ($1, 'urgent') RETURNING id::text",
        friday,
    )
    await conn.close()
    config = tmp_path / "c.toml"
    config.write_text(
        '[calendars.office]\ntimezone = "Europe/Berlin"\ncountry = "DE"\n'
        + "".join(f'{day} = ["09:00-17:00"]\n' for day in ("mon", "tue", "wed", "thu", "fri"))
        + '[policies.urgent]\npriorities = ["urgent"]\nfirst_response = "1h"\n'
        '[policies.default]\ncalendar = "office"\nfirst_response = "1h"\nresolution = "8h"\n'
    )
    result = sla_monitor(
        "--config",
        str(config),
        "evaluate",
        "--json",
        "--now",
        "2026-05-23T12:00:00+02:00",
        env={"SLA_MONITOR_DATABASE__DSN": database_dsn},
    )
    assert result.returncode == 0, result.stderr
    clocks = {t["ticket_id"]: t["clocks"] for t in json.loads(result.stdout)["tickets"]}

    def due(ticket: str, clock: str) -> datetime:
        return datetime.fromisoformat(clocks[ticket][clock]["deadline"])

    assert due(normal, "first_response") == datetime(2026, 5, 26, 10, 0, tzinfo=berlin)
    assert due(normal, "resolution") == datetime(2026, 5, 26, 17, 0, tzinfo=berlin)
    assert clocks[normal]["first_response"]["state"] == "ok"
    assert clocks[normal]["first_response"]["elapsed_seconds"] == 0
    assert due(urgent, "first_response") == datetime(2026, 5, 22, 19, 0, tzinfo=berlin)
    assert clocks[urgent]["first_response"]["state"] == "breached"


def test_an_unknown_calendar_or_bad_hours_exit_78(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[policies.default]\ncalendar = "office"\n')
    result = sla_monitor("--config", str(config), "check-config")
    assert result.returncode == EX_CONFIG
    assert "policies.default.calendar: unknown calendar 'office' (known: 24x7)" in result.stderr
    config.write_text('[calendars.office]\nmon = ["9 to 5"]\n')
    result = sla_monitor("--config", str(config), "check-config")
    assert result.returncode == EX_CONFIG
    assert "calendars.office" in result.stderr and "'9 to 5'" in result.stderr

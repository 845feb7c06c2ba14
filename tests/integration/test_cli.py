"""The `sla-monitor` command as a user runs it: real processes, a real PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit
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
                body = str(r.read().decode())
            # Ready as a standby comes first; a single instance leads one lease (3 s) later,
            # and only then records what it judged (tests read what it recorded).
            if json.loads(body).get("role") == "leader":
                return body
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("daemon never became ready as the leader")


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


async def test_migrate_builds_the_store_not_a_daemon(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Migrating needs the store's pool and schema only: nothing of the daemon is built."""
    from sla_monitor import app, cli
    from sla_monitor.config import Settings

    def no_daemon(*args: object) -> None:
        raise AssertionError("migrate built a daemon")

    monkeypatch.setattr(app, "build_daemon", no_daemon)
    settings = Settings(database={"dsn": database_dsn})
    assert await cli._migrate(settings) == 0
    assert f"applied: {migration_versions()}" in capsys.readouterr().out
    conn = await asyncpg.connect(database_dsn)
    try:
        versions = await conn.fetch("SELECT version FROM sla_monitor.schema_migrations")
    finally:
        await conn.close()
    assert sorted(row["version"] for row in versions) == migration_versions()


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


# A database that refuses the daemon, and a DSN that cannot be parsed: one line, a fixed exit
# code, never the password. The server here trusts 127.0.0.1 (any password succeeds), so a real
# refusal is an unknown role or a missing database; a wrong password comes from a peer that
# answers like PostgreSQL with SQLSTATE 28P01.

EX_UNAVAILABLE = 69
PLANTED = "Pl4nted-pw-93e1"


class RefusingPostgres:
    """Answers every connection's startup message with a FATAL ErrorResponse, as PostgreSQL
    does for a wrong password."""

    def __init__(self, sqlstate: str, message: str) -> None:
        self._fields = b"".join(
            kind + text.encode() + b"\0"
            for kind, text in ((b"S", "FATAL"), (b"V", "FATAL"), (b"C", sqlstate), (b"M", message))
        )
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> RefusingPostgres:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # closed
            with conn:
                while True:
                    head = self._read(conn, 8)
                    if len(head) < 8:
                        break
                    length, code = struct.unpack("!ii", head)
                    if code in (80877103, 80877104):  # SSLRequest, GSSENCRequest
                        conn.sendall(b"N")
                        continue
                    self._read(conn, length - 8)  # the rest of the startup message
                    body = self._fields + b"\0"
                    conn.sendall(b"E" + struct.pack("!i", len(body) + 4) + body)
                    break

    @staticmethod
    def _read(conn: socket.socket, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            if not chunk:
                break
            data += chunk
        return data


def _assert_one_line_without_secret(
    result: subprocess.CompletedProcess[str], code: int, expected: str
) -> None:
    assert result.returncode == code, result.stderr
    output = result.stdout + result.stderr
    assert PLANTED not in output
    assert "Traceback" not in output
    # Besides the daemon's JSON log lines (`run` logs "listening" and "stopped"), exactly one
    # line, naming the problem.
    lines = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("sla-monitor: ") and expected in lines[0], lines[0]


def _command(command: str, dsn: str) -> subprocess.CompletedProcess[str]:
    return sla_monitor(
        command,
        env={"SLA_MONITOR_DATABASE__DSN": dsn, "SLA_MONITOR_DAEMON__LISTEN_PORT": "0"},
        timeout=30,
    )


@pytest.mark.parametrize("command", ["migrate", "run", "evaluate"])
def test_a_missing_database_exits_69_with_one_line(admin_dsn: str, command: str) -> None:
    parts = urlsplit(admin_dsn)
    dsn = f"postgresql://{parts.username}:{PLANTED}@{parts.netloc.rpartition('@')[2]}"
    dsn += f"/sla_absent_{uuid.uuid4().hex[:12]}"
    result = _command(command, dsn)
    _assert_one_line_without_secret(
        result, EX_UNAVAILABLE, "database.dsn: the database does not exist"
    )


@pytest.mark.parametrize("command", ["migrate", "run", "evaluate"])
def test_an_unknown_role_exits_69_with_one_line(admin_dsn: str, command: str) -> None:
    parts = urlsplit(admin_dsn)
    role = f"sla_absent_{uuid.uuid4().hex[:12]}"
    dsn = f"postgresql://{role}:{PLANTED}@{parts.netloc.rpartition('@')[2]}{parts.path}"
    result = _command(command, dsn)
    _assert_one_line_without_secret(
        result, EX_UNAVAILABLE, "database.dsn: the server refused the login"
    )


@pytest.mark.parametrize("command", ["migrate", "run"])
def test_a_wrong_password_exits_69_with_one_line(command: str) -> None:
    refusal = 'password authentication failed for user "app"'
    with RefusingPostgres("28P01", refusal) as server:
        result = _command(command, f"postgresql://app:{PLANTED}@127.0.0.1:{server.port}/db")
    _assert_one_line_without_secret(result, EX_UNAVAILABLE, "InvalidPasswordError")
    assert refusal in result.stderr


@pytest.mark.parametrize("command", ["migrate", "run", "check-config"])
@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://app:pa/ss#w{PLANTED}@127.0.0.1:5432/db",
        f"postgresql://app:{PLANTED}#x@127.0.0.1:5432/db",
        f"postgresql://app:1/{PLANTED}@127.0.0.1:5432/db",
    ],
)
def test_a_malformed_dsn_exits_78_without_a_traceback(command: str, dsn: str) -> None:
    result = _command(command, dsn)
    assert result.returncode == EX_CONFIG, result.stderr
    assert PLANTED not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    # The header and one line for the one problem.
    assert result.stderr.splitlines() == [
        "sla-monitor: invalid configuration (environment only):",
        result.stderr.splitlines()[1],
    ]
    assert result.stderr.splitlines()[1].startswith("  database.dsn: the DSN cannot be parsed")
    assert "percent-encode special characters in the password" in result.stderr


def test_an_unreachable_server_is_retried_not_exited() -> None:
    """Unlike a refusal, a server that cannot be reached may come back: `run` keeps serving
    /readyz 503 while it retries, and stops cleanly on SIGTERM."""
    port = _free_port()
    database_port = _free_port()  # nothing listens there
    process = spawn_daemon(
        f"postgresql://app:{PLANTED}@127.0.0.1:{database_port}/db", port, capture=True
    )
    try:
        deadline = time.monotonic() + 30
        status = None
        while status is None and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2)
            except urllib.error.HTTPError as error:
                status = error.code
            except OSError:
                time.sleep(0.1)
        assert status == 503
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        assert process.returncode == 0
        _, stderr = process.communicate()
        assert "database_unreachable" in stderr
        assert PLANTED not in stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

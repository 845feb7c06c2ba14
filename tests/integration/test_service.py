"""The daemon as systemd runs it: notify socket, watchdog, SIGHUP reload, SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from sla_monitor.sources.sql import REFERENCE_SCHEMA
from sla_monitor.systemd import SystemdNotifier
from tests.integration.test_cli import _free_port, _wait_ready, spawn_daemon

pytestmark = pytest.mark.integration


def test_notifier_sends_datagrams_and_is_silent_without_a_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(path)
        SystemdNotifier(path).notify(ready="1", status="tracking 3 open tickets")
        assert listener.recv(4096) == b"READY=1\nSTATUS=tracking 3 open tickets"
    assert not SystemdNotifier("").enabled
    SystemdNotifier("").notify(ready="1")  # no socket: nothing happens, nothing raises


def _metric(port: int, line_start: str) -> float | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(line_start):
                return float(line.rsplit(" ", 1)[1])
    return None


def _eventually(check: Callable[[], bool], what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


async def _one_ticket(dsn: str, age: timedelta) -> None:
    conn = await asyncpg.connect(dsn)
    await conn.execute(REFERENCE_SCHEMA)
    await conn.execute(
        "INSERT INTO helpdesk.tickets (subject, created_at) VALUES ('x', $1)",
        datetime.now(UTC) - age,
    )
    await conn.close()


async def test_ready_watchdog_and_stopping_are_notified(database_dsn: str, tmp_path: Path) -> None:
    await _one_ticket(database_dsn, timedelta(minutes=5))
    path = str(tmp_path / "notify")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    listener.settimeout(20)
    port = _free_port()
    process = spawn_daemon(
        database_dsn, port, env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"}
    )
    try:
        messages: list[str] = []
        while not any("READY=1" in m for m in messages):
            messages.append(listener.recv(4096).decode())
        ready = next(m for m in messages if "READY=1" in m)
        assert "STATUS=tracking 1 open tickets" in ready
        # Watchdog pings keep coming every WATCHDOG_USEC/2 while idle between polls.
        pings = [listener.recv(4096).decode() for _ in range(3)]
        assert all("WATCHDOG=1" in p for p in pings)
        process.send_signal(signal.SIGTERM)
        while "STOPPING=1" not in listener.recv(4096).decode():
            pass
        assert process.wait(timeout=5) == 0
    finally:
        listener.close()
        if process.poll() is None:
            process.kill()
            process.wait()


async def test_a_long_first_sync_reports_progress_and_extends_the_start_timeout(
    database_dsn: str, tmp_path: Path
) -> None:
    for _ in range(3):
        await _one_ticket(database_dsn, timedelta(minutes=5))
    path = str(tmp_path / "notify")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    listener.settimeout(20)
    process = spawn_daemon(
        database_dsn,
        _free_port(),
        env={
            "NOTIFY_SOCKET": path,
            "WATCHDOG_USEC": "400000",
            "SLA_MONITOR_SOURCE__BATCH_SIZE": "1",  # three batches
        },
    )
    try:
        messages: list[str] = []
        while not any("READY=1" in m for m in messages):
            messages.append(listener.recv(4096).decode())
        progress = [m for m in messages if "STATUS=initial sync" in m]
        assert progress, messages
        assert "STATUS=initial sync: 1 open tickets read" in progress[0]
        assert all("EXTEND_TIMEOUT_USEC=60000000" in m and "WATCHDOG=1" in m for m in progress)
        assert messages.index(progress[0]) < next(
            i for i, m in enumerate(messages) if "READY=1" in m
        )
    finally:
        listener.close()
        process.terminate()
        process.wait(timeout=10)


async def test_sighup_reloads_policies_and_keeps_them_on_a_bad_file(
    database_dsn: str, tmp_path: Path
) -> None:
    await _one_ticket(database_dsn, timedelta(minutes=50))  # at risk under a 1 h target
    config = tmp_path / "sla-monitor.toml"
    config.write_text('[policies.default]\nfirst_response = "1h"\n')
    port = _free_port()
    process = spawn_daemon(database_dsn, port, config, capture=True)
    at_risk = (
        'sla_monitor_open_tickets{clock="first_response",priority="normal",'
        'queue="support",state="at_risk"}'
    )
    reload_ok = "sla_monitor_config_last_reload_successful"
    try:
        _wait_ready(port, process)
        assert _metric(port, at_risk) == 1

        config.write_text('[policies.default]\nfirst_response = "2h"\n')
        process.send_signal(signal.SIGHUP)
        _eventually(lambda: _metric(port, at_risk) == 0, "the ticket leaves at_risk")

        config.write_text('[policies.default]\nfirst_response = "whenever"\n')
        process.send_signal(signal.SIGHUP)
        _eventually(lambda: _metric(port, reload_ok) == 0, "the failed reload is exported")
        assert _metric(port, at_risk) == 0  # the 2 h policy is still in force
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=5)
        failures = [
            json.loads(line)
            for line in stderr.splitlines()
            if line.startswith("{") and '"reload_failed"' in line
        ]
        assert "policies.default.first_response" in failures[0]["error"]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

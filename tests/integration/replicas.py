"""Two (or more) real `sla-monitor run` processes on one state database, a webhook receiver
that timestamps every delivery, and tickets that breach while the test runs: shared by the
failover tests and bench/bench_failover.py."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web

from tests.integration.peers import free_port
from tests.integration.test_cli import _env

# The reference policy's first response target: a ticket created this long before now
# breaches now.
TARGET = timedelta(hours=1)


def replica_config(path: Path, webhook: str, extra: str = "", reconcile: str = "5s") -> Path:
    path.write_text(
        '[daemon]\npoll_interval = "1s"\nshutdown_timeout = "2s"\n'
        f'[source]\nreconcile_interval = "{reconcile}"\n'
        '[escalation]\nenabled = true\nretry_initial = "0.2s"\nmax_pages_per_minute = 1000\n'
        f'[escalation.channels.webhook]\nurl = "{webhook}"\nsecret = "s"\n'
        '[[escalation.levels]]\nname = "oncall"\nwhen = "breached"\nchannels = ["webhook"]\n'
        + extra
    )
    return path


@dataclass
class Replica:
    """One `sla-monitor run` process, its log in a file."""

    name: str
    dsn: str
    config: Path
    log: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sla_monitor", "--config", str(self.config), "run"],
                env=_env(
                    {
                        "SLA_MONITOR_DATABASE__DSN": self.dsn,
                        "SLA_MONITOR_DAEMON__LISTEN_PORT": str(self.port),
                    }
                ),
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def readyz(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1) as r:
                body: dict[str, Any] = json.loads(r.read())
                return body
        except urllib.error.HTTPError as error:
            body = json.loads(error.read())
            return body
        except OSError:
            return None

    def role(self) -> str | None:
        """ "leader" or "standby" once ready (its first poll done), else None."""
        ready = self.readyz()
        if ready is None or ready.get("status") != "ready":
            return None
        role: str | None = ready.get("role")
        return role

    def metric(self, name: str) -> float | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=1) as r:
                text = r.read().decode()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def logged(self, event: str) -> list[str]:
        return [line for line in self.log.read_text(errors="replace").splitlines() if event in line]


@dataclass
class Receiver:
    """A webhook receiver: every POST with its path, arrival instant (monotonic) and body."""

    port: int = field(default_factory=free_port)
    deliveries: list[tuple[str, float, dict[str, Any]]] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        async def receive(request: web.Request) -> web.Response:
            body = json.loads(await request.read())
            self.deliveries.append((request.path, time.monotonic(), body))
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/{path:.*}", receive)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def triggers(self) -> Counter[str]:
        """Trigger POSTs per dedup key (a key twice is a duplicate delivery)."""
        return Counter(b["dedup_key"] for _, _, b in self.deliveries if b["action"] == "trigger")

    def tickets(self) -> set[str]:
        return {
            b["labels"]["ticket_id"]
            for _, _, b in self.deliveries
            if b["action"] == "trigger" and "ticket_id" in b.get("labels", {})
        }


async def breaching_tickets(
    conn: asyncpg.Connection, count: int, start_in: float, every: float
) -> list[str]:
    """``count`` tickets that breach their first response one after the other, the first in
    ``start_in`` seconds, then one every ``every`` seconds (by the database's clock)."""
    now: datetime = await conn.fetchval("SELECT now()")
    rows = await conn.fetch(
        "INSERT INTO helpdesk.tickets (subject, created_at) "
        "SELECT 'breaching ' || n, $1::timestamptz + n * make_interval(secs => $2) "
        "FROM generate_series(0, $3 - 1) AS n RETURNING id",
        now - TARGET + timedelta(seconds=start_in),
        every,
        count,
    )
    return [str(row["id"]) for row in rows]


async def wait_for(check: Any, what: str, seconds: float, step: float = 0.05) -> float:
    """Polls ``check`` (sync, run in a thread, or a coroutine function) until true; returns
    the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.monotonic() - started
        await asyncio.sleep(step)
    raise AssertionError(f"never happened within {seconds} s: {what}")


async def role_of(replica: Replica) -> str | None:
    return await asyncio.to_thread(replica.role)


async def pending(conn: asyncpg.Connection) -> int:
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM sla_monitor.outbox WHERE delivered_at IS NULL"
            )
        )
    except asyncpg.UndefinedTableError:
        return -1


async def synced(conn: asyncpg.Connection) -> bool:
    try:
        return bool(await conn.fetchval("SELECT count(*) FROM sla_monitor.watermarks"))
    except asyncpg.UndefinedTableError:
        return False


def now_utc() -> datetime:
    return datetime.now(UTC)

"""Test peers: a real Alertmanager process, and fake HTTP peers for the services that cannot
run here (PagerDuty, Slack, a webhook receiver)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

ALERTMANAGER_BINARIES = ("prometheus-alertmanager", "alertmanager")


def require_binary(names: tuple[str, ...], package: str) -> str:
    """The binary's path; skips outside CI when absent, fails in CI (which installs it)."""
    for name in names:
        if path := shutil.which(name):
            return path
    message = f"{names[0]} not installed (Debian package {package}; .ci/run installs it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Alertmanager:
    """A real Alertmanager on loopback, grouping by alertname and queue."""

    CONFIG = """
route:
  receiver: blackhole
  group_by: [alertname, queue]
  group_wait: 1s
  group_interval: 1s
receivers:
  - name: blackhole
"""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._dir = tempfile.mkdtemp(prefix="sla-am-")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        config = Path(self._dir) / "alertmanager.yml"
        config.write_text(self.CONFIG)
        self._process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={config}",
                f"--storage.path={self._dir}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("alertmanager did not become ready")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
        shutil.rmtree(self._dir, ignore_errors=True)

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=5) as response:
            return json.loads(response.read())

    def alerts(self, **labels: str) -> list[dict[str, Any]]:
        """Active alerts whose labels include ``labels``."""
        found = self.get("/api/v2/alerts?active=true&silenced=false&inhibited=false")
        return [a for a in found if all(a["labels"].get(k) == v for k, v in labels.items())]


@dataclass
class FakePeer:
    """Records every request; answers 503 while ``down``. Models PagerDuty's dedup: a trigger
    for a key whose incident is open does not page again."""

    down: bool = False
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    open_incidents: set[str] = field(default_factory=set)
    pages: Counter[str] = field(default_factory=Counter)
    resolves: Counter[str] = field(default_factory=Counter)
    triggers: Counter[str] = field(default_factory=Counter)

    def app(self) -> web.Application:
        async def receive(request: web.Request) -> web.Response:
            if self.down:
                return web.Response(status=503, text="down for maintenance")
            body = await request.read()
            self.requests.append((request.path, dict(request.headers), body))
            if request.path == "/pagerduty":
                event = json.loads(body)
                key = event["dedup_key"]
                if event["event_action"] == "trigger":
                    self.triggers[key] += 1
                    if key not in self.open_incidents:
                        self.open_incidents.add(key)
                        self.pages[key] += 1
                elif event["event_action"] == "resolve":
                    self.resolves[key] += 1
                    self.open_incidents.discard(key)
                return web.json_response({"status": "success", "dedup_key": key}, status=202)
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/{path:.*}", receive)
        return app

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [json.loads(body) for p, _, body in self.requests if p == path]


class PeerServer:
    """Runs a FakePeer on a loopback port in its own thread-free asyncio runner."""

    def __init__(self, peer: FakePeer) -> None:
        self.peer = peer
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.peer.app())
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def until(check: Any, what: str, seconds: float = 60) -> None:
    """Waits for a condition set by another process (a daemon under test)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")

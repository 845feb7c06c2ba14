"""The Debian package end to end, under a real systemd: scripts/build-deb.sh's .deb installed
with apt in a minimal Debian 12 booted with systemd-nspawn, run against the host's PostgreSQL,
reloaded, stopped, killed by its watchdog, broken, rated by systemd-analyze security, purged.

The Debian root comes from mmdebstrap and is cached in ~/.cache/sla-monitor-nspawn/ (built
once per machine); every run boots a throw-away copy. Without a host systemd, machinectl and
`systemctl -M` cannot reach the container: commands run in it with nsenter on its PID 1. The
container shares the host's network, so the daemon inside reaches 127.0.0.1:5432 and its
/metrics port is the host's.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from sla_monitor.sources.sql import REFERENCE_SCHEMA
from tests.integration.peers import free_port, require_binary

ROOT = Path(__file__).parents[2]
CACHE = Path.home() / ".cache" / "sla-monitor-nspawn"
# What the root holds: the package's dependencies (so apt needs no network), systemd to boot.
ROOT_PACKAGES = "systemd,systemd-sysv,dbus,procps,python3,ca-certificates,curl"
CACHED_ROOT = CACHE / f"bookworm-{ROOT_PACKAGES.replace(',', '+')}"
# pip and apt inside want a clean environment, not the test's.
ENV = (
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "DEBIAN_FRONTEND=noninteractive",
)


def debian_root() -> Path:
    """The cached minimal Debian 12 root, built by mmdebstrap when missing."""
    if (CACHED_ROOT / "usr" / "bin" / "python3").exists():
        return CACHED_ROOT
    mmdebstrap = require_binary(("mmdebstrap",), "mmdebstrap")
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = CACHE / f"partial-{uuid.uuid4().hex[:8]}"
    try:
        options = ["--quiet", "--variant=minbase", f"--include={ROOT_PACKAGES}"]
        subprocess.run(
            [mmdebstrap, *options, "bookworm", str(partial)],
            check=True,
            capture_output=True,
        )
        try:
            partial.rename(CACHED_ROOT)  # atomic: a root that is there is complete
        except OSError:
            if not CACHED_ROOT.exists():  # else a concurrent run was first
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return CACHED_ROOT


class Container:
    """A booted copy of the Debian root; ``run`` executes a command in it (clean env)."""

    def __init__(self, directory: Path) -> None:
        nspawn = require_binary(("systemd-nspawn",), "systemd-container")
        self.directory = directory
        options = ["--boot", "--register=no", "--keep-unit", "--quiet", "--console=passive"]
        self.pid1: int | None = None
        self.process = subprocess.Popen(
            [nspawn, *options, "-D", str(directory)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            self.pid1 = self._find_pid1()
            self._wait_booted()
        except BaseException:
            self.close()  # no container outlives a failed boot
            raise

    def _find_pid1(self) -> int:
        """The container's init: nspawn's child that is PID 1 in its own PID namespace (at
        first nspawn's child is a helper of its own that forks the init and exits)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.process.stderr and self.process.stderr.read()
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
            for pid in children.read_text().split() if children.exists() else []:
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except FileNotFoundError:
                    continue
                nspid = next(line for line in status.splitlines() if line.startswith("NSpid:"))
                if nspid.split()[1:] == [pid, "1"]:
                    return int(pid)
            time.sleep(0.1)
        raise AssertionError("systemd-nspawn started no init")

    def _wait_booted(self) -> None:
        deadline = time.monotonic() + 90
        state = None
        while time.monotonic() < deadline:
            state = self.run("systemctl", "is-system-running", check=False)
            if state.stdout.strip() in ("running", "degraded"):
                return
            time.sleep(0.2)
        raise AssertionError(f"the container did not boot: {state}")

    def run(self, *command: str, check: bool = True, stdin: str | None = None) -> Result:
        result = subprocess.run(
            ["nsenter", "-t", str(self.pid1), "-a", "env", "-i", *ENV, *command],
            capture_output=True,
            text=True,
            input=stdin,
            timeout=300,
        )
        if check:
            assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
        return result

    def write(self, path: str, text: str, mode: str = "0644") -> None:
        self.run("install", "-D", "-m", mode, "/dev/stdin", path, stdin=text)

    def show(self, *properties: str) -> dict[str, str]:
        out = self.run("systemctl", "show", "sla-monitor", *(f"-p{p}" for p in properties))
        return dict(line.split("=", 1) for line in out.stdout.splitlines())

    def close(self) -> None:
        # nspawn turns SIGTERM into an orderly shutdown of the container's systemd.
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                # Killing the container's PID 1 ends everything in its PID namespace.
                if self.pid1:
                    os.kill(self.pid1, signal.SIGKILL)
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)


Result = subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def container(admin_dsn: str) -> Iterator[Container]:
    require_binary(("nsenter",), "util-linux")
    if os.geteuid() != 0:
        message = "booting a container with systemd-nspawn needs root"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    # The service (DynamicUser=, PrivateTmp=) reaches PostgreSQL over TCP through the shared
    # network; the embedded pgserver's socket in a root-only temporary directory it cannot.
    if not urlsplit(admin_dsn).hostname:
        message = "the package test needs PostgreSQL on TCP: set SLA_MONITOR_TEST_DSN"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    root = debian_root()
    copy = CACHE / f"run-{uuid.uuid4().hex[:8]}"
    box = None
    try:
        subprocess.run(["cp", "-a", "--reflink=auto", str(root), str(copy)], check=True)
        box = Container(copy)
        yield box
    finally:
        if box:
            box.close()
        shutil.rmtree(copy, ignore_errors=True)


@pytest.fixture
async def helpdesk_dsn(database_dsn: str) -> str:
    conn = await asyncpg.connect(database_dsn)
    try:
        await conn.execute(REFERENCE_SCHEMA)
        await conn.execute(
            "INSERT INTO helpdesk.tickets (created_at, priority, status, queue) "
            "VALUES (now() - interval '2 hours', 'normal', 'new', 'hosting')"
        )
    finally:
        await conn.close()
    return database_dsn


def files(box: Container) -> set[str]:
    """Every path of the container's file system that a package could own or leave."""
    out = box.run(
        "find", "/", "-xdev", "(", "-path", "/var/log", "-o", "-path", "/var/cache",
        "-o", "-path", "/var/lib/dpkg", "-o", "-path", "/var/lib/apt", "-o", "-path",
        "/var/lib/systemd", "-o", "-path", "/tmp", "-o", "-path", "/var/tmp", ")",
        "-prune", "-o", "-print",
    )  # fmt: skip
    return set(out.stdout.splitlines())


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def metric(box: Container, port: int, name: str) -> str | None:
    result = box.run("curl", "-sf", f"http://127.0.0.1:{port}/metrics", check=False)
    match = re.search(rf"^{name} (\S+)$", result.stdout, re.M)
    return match.group(1) if match else None


def test_package_installs_runs_and_purges_under_systemd(
    deb: Path, container: Container, helpdesk_dsn: str
) -> None:
    box = container
    before = files(box)

    # Install: nothing is started or enabled before the configuration is edited.
    shutil.copy(deb, box.directory / "root" / "sla-monitor.deb")
    box.run("apt-get", "install", "-y", "-q", "/root/sla-monitor.deb")
    assert box.run("systemctl", "is-enabled", "sla-monitor", check=False).stdout.strip() == (
        "disabled"
    )
    assert box.show("ActiveState") == {"ActiveState": "inactive"}
    config = "/etc/sla-monitor/sla-monitor.toml"
    shipped = box.run("cat", config).stdout
    assert 'templates_dir = "/usr/share/sla-monitor/templates"' in shipped
    assert box.run("ls", "/usr/share/sla-monitor/templates").stdout.split() == [
        "update.de.txt",
        "update.en.txt",
    ]

    # Configure and start: `enable --now` returns once the daemon sent READY=1.
    port = free_port()
    box.write("/etc/sla-monitor/dsn", helpdesk_dsn + "\n", mode="0600")
    box.write(config, shipped.replace("listen_port = 9464", f"listen_port = {port}"))
    box.run("systemctl", "enable", "--now", "sla-monitor")
    assert box.show("ActiveState", "SubState") == {"ActiveState": "active", "SubState": "running"}
    assert "sla_monitor_" in box.run("curl", "-sf", f"http://127.0.0.1:{port}/metrics").stdout

    # Reload: a bad file is refused (the running policies stay, the service runs on), a good
    # one is taken again.
    good = shipped.replace("listen_port = 9464", f"listen_port = {port}")
    box.write(config, good + '\n[policies.broken]\nfirst_response = "soon"\n')
    box.run("systemctl", "reload", "sla-monitor")
    wait_for(
        lambda: metric(box, port, "sla_monitor_config_last_reload_successful") == "0.0",
        "a failed reload",
    )
    assert box.show("ActiveState", "SubState") == {"ActiveState": "active", "SubState": "running"}
    box.write(config, good)
    box.run("systemctl", "reload", "sla-monitor")
    wait_for(
        lambda: metric(box, port, "sla_monitor_config_last_reload_successful") == "1.0",
        "a successful reload",
    )

    # Stop: clean, exit code 0.
    box.run("systemctl", "stop", "sla-monitor")
    assert box.show("ActiveState", "Result", "ExecMainStatus") == {
        "ActiveState": "inactive",
        "Result": "success",
        "ExecMainStatus": "0",
    }

    # The watchdog restarts a daemon that stopped answering (a shorter one for the test).
    box.write(
        "/etc/systemd/system/sla-monitor.service.d/test.conf",
        "[Service]\nWatchdogSec=3\nRestartSec=1\n",
    )
    box.run("systemctl", "daemon-reload")
    box.run("systemctl", "start", "sla-monitor")
    frozen = box.show("MainPID")["MainPID"]
    box.run("kill", "-STOP", frozen)

    def restarted() -> bool:
        state = box.show("MainPID", "SubState")
        return state["SubState"] == "running" and state["MainPID"] not in (frozen, "0")

    wait_for(restarted, "a restart by the watchdog")
    assert int(box.show("NRestarts")["NRestarts"]) >= 1
    journal = box.run("journalctl", "-u", "sla-monitor", "--no-pager", check=False).stdout
    assert "Watchdog timeout" in journal

    # A broken configuration: exit 78 and no restart.
    box.write(config, good.replace("[daemon]", "[daemon", 1))
    assert box.run("systemctl", "restart", "sla-monitor", check=False).returncode != 0
    time.sleep(3)  # three times RestartSec: a restart would have happened by now
    assert box.show("ActiveState", "ExecMainStatus") == {
        "ActiveState": "failed",
        "ExecMainStatus": "78",
    }
    box.write(config, good)

    # The hardening as installed.
    security = box.run("systemd-analyze", "security", "sla-monitor", check=False).stdout
    match = re.search(r"Overall exposure level for sla-monitor.service: ([\d.]+)", security)
    assert match, security
    print(match.group(0))  # shown with -rP
    assert float(match.group(1)) <= 1.5

    # Purge: what is left is what Debian allows (logs, dpkg's and apt's own records).
    box.run("rm", "-rf", "/etc/systemd/system/sla-monitor.service.d", "/root/sla-monitor.deb")
    box.run("apt-get", "purge", "-y", "-q", "sla-monitor")
    assert box.show("LoadState") == {"LoadState": "not-found"}
    assert files(box) == before

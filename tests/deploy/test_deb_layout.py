"""The .deb of scripts/build-deb.sh, inspected without installing it: its control data, its
file list, lintian, and its virtualenv run from an unpacked copy with Debian's python3."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.integration.peers import require_binary

ROOT = Path(__file__).parents[2]
PREFIX = "./opt/sla-monitor"
SITE = f"{PREFIX}/lib/python3.11/site-packages"


def control(deb: Path, field: str) -> str:
    return subprocess.run(
        ["dpkg-deb", "--field", str(deb), field], capture_output=True, text=True, check=True
    ).stdout.strip()


def contents(deb: Path) -> dict[str, str]:
    """Path -> the `dpkg-deb -c` line (mode, owner, size, date, path [-> target])."""
    out = subprocess.run(
        ["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True
    ).stdout
    entries = {}
    for line in out.splitlines():
        path = line.split(maxsplit=5)[5].split(" -> ")[0]
        entries[path.rstrip("/") or "."] = line
    return entries


@pytest.fixture(scope="module")
def unpacked(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("unpacked")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], check=True)
    return target


def test_control_fields(deb: Path) -> None:
    assert control(deb, "Package") == "sla-monitor"
    depends = control(deb, "Depends")
    assert depends.startswith("python3 (>= 3.11), python3 (<< 3.12), procps, libc6 (>= 2.")
    assert re.fullmatch(r"\d+\.\d+\.\d+-1", control(deb, "Version"))


def test_the_example_configuration_is_the_only_conffile(deb: Path, tmp_path: Path) -> None:
    subprocess.run(["dpkg-deb", "-e", str(deb), str(tmp_path / "DEBIAN")], check=True)
    conffiles = (tmp_path / "DEBIAN" / "conffiles").read_text().split()
    assert conffiles == ["/etc/sla-monitor/sla-monitor.toml"]


def test_layout(deb: Path) -> None:
    entries = contents(deb)
    for path in (
        "./lib/systemd/system/sla-monitor.service",
        "./etc/sla-monitor/sla-monitor.toml",
        "./usr/share/sla-monitor/templates/update.en.txt",
        "./usr/share/sla-monitor/templates/update.de.txt",
        "./usr/share/sla-monitor/grafana/sla-monitor.json",
        "./usr/share/sla-monitor/grafana/sla-monitor-customers.json",
        "./usr/share/sla-monitor/prometheus/rules.yml",
        "./usr/share/sla-monitor/prometheus/prometheus.yml",
        "./usr/share/sla-monitor/postgresql/roles.sql",
        "./usr/share/doc/sla-monitor/copyright",
        "./usr/share/doc/sla-monitor/changelog.Debian.gz",
        f"{PREFIX}/bin/sla-monitor",
        f"{SITE}/sla_monitor/cli.py",
    ):
        assert path in entries, path
    assert entries["./usr/bin/sla-monitor"].endswith(
        "./usr/bin/sla-monitor -> /opt/sla-monitor/bin/sla-monitor"
    )
    # The venv's interpreter is Debian's, not the build machine's pyenv or a copy.
    assert entries[f"{PREFIX}/bin/python3"].endswith("-> /usr/bin/python3")
    assert all(" root/root " in line for line in entries.values())
    # No installer in a packaged venv, and no world- or group-writable file.
    assert not any(path.startswith(f"{SITE}/pip/") for path in entries)
    assert not [line for line in entries.values() if re.match(r"^[^l].{4}w|^[^l].{7}w", line)]


def test_shipped_files_are_the_repository_s(unpacked: Path) -> None:
    unit = unpacked / "lib/systemd/system/sla-monitor.service"
    assert unit.read_text() == (ROOT / "deploy/systemd/sla-monitor.service").read_text()
    assert "ExecStart=/opt/sla-monitor/bin/sla-monitor " in unit.read_text()
    config = (unpacked / "etc/sla-monitor/sla-monitor.toml").read_text()
    original = (ROOT / "config/sla-monitor.toml").read_text()
    changed = [
        (a, b) for a, b in zip(original.splitlines(), config.splitlines(), strict=True) if a != b
    ]
    # Only the templates move, to where the package puts them.
    assert len(changed) == 1
    assert changed[0][1].startswith('templates_dir = "/usr/share/sla-monitor/templates"')


def test_the_venv_is_relocated_to_opt(unpacked: Path) -> None:
    venv = unpacked / "opt/sla-monitor"
    assert (venv / "bin/sla-monitor").read_text().startswith("#!/opt/sla-monitor/bin/python\n")
    leftovers = subprocess.run(
        ["grep", "-rlI", "-e", "/tmp/", str(venv / "bin"), str(venv / "pyvenv.cfg")],
        capture_output=True,
        text=True,
    )
    assert leftovers.stdout == ""


def test_the_venv_holds_the_pinned_dependencies(unpacked: Path) -> None:
    python = unpacked / "opt/sla-monitor/bin/python"
    freeze = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; "
         "print('\\n'.join(f'{d.name}=={d.version}' for d in m.distributions()))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    installed = {line.lower().replace("_", "-") for line in freeze.stdout.split()}
    pinned = {
        line.lower().replace("_", "-")
        for line in (ROOT / "deploy/debian/requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert installed - pinned == {"sla-monitor==0.1.0"}
    assert pinned <= installed


def test_the_unpacked_command_runs_with_debian_python(unpacked: Path) -> None:
    """Debian's /usr/bin/python3 (what the target runs) imports everything and checks the
    shipped configuration."""
    result = subprocess.run(
        [
            str(unpacked / "opt/sla-monitor/bin/python"),
            "-m",
            "sla_monitor",
            "--config",
            str(unpacked / "etc/sla-monitor/sla-monitor.toml"),
            "check-config",
        ],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout


def test_maintainer_scripts_neither_enable_nor_start(deb: Path, tmp_path: Path) -> None:
    """The unit needs a DSN and an edited configuration first: installing starts nothing."""
    subprocess.run(["dpkg-deb", "-e", str(deb), str(tmp_path)], check=True)
    for script in ("postinst", "prerm", "postrm"):
        text = (tmp_path / script).read_text()
        assert not re.search(r"systemctl (start|enable|restart|reload)\b", text), script
        assert "deb-systemd-helper" not in text
    assert "rm -rf /etc/sla-monitor /var/lib/sla-monitor" in (tmp_path / "postrm").read_text()


def test_lintian_is_clean_but_for_justified_overrides(deb: Path) -> None:
    lintian = require_binary(("lintian",), "lintian")
    result = subprocess.run(
        [lintian, "--fail-on", "error,warning", "--tag-display-limit", "0", str(deb)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not re.search(r"^[EW]:", result.stdout, re.M), result.stdout

"""The Debian package, built once per session by scripts/build-deb.sh."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.peers import require_binary

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="session")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_binary(("dpkg-deb",), "dpkg")
    out = tmp_path_factory.mktemp("deb")
    result = subprocess.run(
        [str(ROOT / "scripts" / "build-deb.sh"), str(out)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return Path(result.stdout.strip().splitlines()[-1])

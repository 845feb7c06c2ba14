"""bench_report runs end to end at a tiny size: it loads rows into the daemon's migrated schema
by its column names and runs the real `report` command over them, so a migration or a CLI
change that breaks it fails here rather than on the next person who measures."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[2] / "bench"


def test_bench_report_runs_every_command_at_a_small_size(
    admin_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SLA_MONITOR_BENCH_DSN", admin_dsn)
    monkeypatch.syspath_prepend(str(BENCH))
    bench_report = importlib.import_module("bench_report")
    try:
        bench_report.run(["--tickets", "2000", "--repeat", "1", "--profile"])
    finally:
        sys.modules.pop("bench_report", None)
    printed = capsys.readouterr().out
    assert "loaded 2,000 tickets: 4,000 completions" in printed
    lines = {line.split("  ")[0]: line for line in printed.splitlines()}
    for label in (
        "--last 365d --by organization",
        "--last 30d --by customer --format html",
        "--last 365d --by queue --by priority --format csv",
    ):
        assert label in lines, label
    # The year's CSV: a header and one line per queue and priority, from (nearly) every row:
    # the few first responses stopped before the year (or in the seconds since the load) miss.
    year = lines["--last 365d --by queue --by priority --format csv"]
    completions = int(year.split(" + ")[0].split()[-1].replace(",", ""))
    assert 3900 <= completions <= 4000
    assert year.endswith(" 81l")
    assert "cProfile of `report --last 365d --by organization`" in printed

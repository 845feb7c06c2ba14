"""bench_api runs end to end at a tiny size: the import check alone missed that its stand-in
daemon lacked the store an explanation now reads its ledger from."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[2] / "bench"


def test_bench_api_answers_every_request_at_a_small_size(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    bench_api = importlib.import_module("bench_api")
    try:
        bench_api.main([500])
    finally:
        sys.modules.pop("bench_api", None)
    printed = capsys.readouterr().out
    assert "500 tracked" in printed
    assert "first listing (builds the index)" in printed
    assert printed.count(" ms median ") == 6  # every request answered 200 (asserted inside)

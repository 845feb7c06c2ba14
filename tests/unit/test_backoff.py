"""The backoff every retry uses: growth, cap, jitter, and absurd inputs."""

from __future__ import annotations

import pytest

from sla_monitor.backoff import backoff


def test_it_doubles_from_the_initial_delay() -> None:
    assert [backoff(n, 0.5, 1000) for n in range(5)] == [0.5, 1, 2, 4, 8]


def test_it_is_capped_at_the_maximum() -> None:
    assert [backoff(n, 0.5, 30) for n in range(5, 9)] == [16, 30, 30, 30]
    assert backoff(3, 1, 2.5) == 2.5


def test_jitter_spreads_it_over_the_upper_half() -> None:
    assert backoff(3, 1, 300, jitter=0.0) == 4.0  # half of 8
    assert backoff(3, 1, 300, jitter=0.5) == 6.0
    assert 7.99 < backoff(3, 1, 300, jitter=0.999999) < 8.0
    assert backoff(20, 1, 300, jitter=0.0) == 150.0  # half of the cap
    for jitter in (0.0, 0.25, 0.75, 0.9999):
        assert 150.0 <= backoff(50, 1, 300, jitter) < 300.0


@pytest.mark.parametrize("jitter", [-0.1, 1.0, 2.0])
def test_jitter_outside_zero_to_one_is_refused(jitter: float) -> None:
    with pytest.raises(ValueError, match="jitter must be in"):
        backoff(1, 1, 10, jitter)


def test_huge_attempt_counts_stay_at_the_cap_without_overflow() -> None:
    for attempts in (64, 1100, 10**6, 2**63):
        assert backoff(attempts, 0.5, 30) == 30
        assert backoff(attempts, 1e300, 60, jitter=0.5) == 45
    assert backoff(-5, 0.5, 30) == 0.5  # no attempts yet


def test_a_zero_initial_delay_stays_zero() -> None:
    assert backoff(0, 0, 300) == 0
    assert backoff(10**9, 0, 300, jitter=0.7) == 0

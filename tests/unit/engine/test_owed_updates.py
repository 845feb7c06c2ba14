"""Owed progress updates and quiet hours."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sla_monitor.engine import EventKind, evaluate_ticket
from sla_monitor.engine.owed_updates import QuietHours, owed_update
from tests.unit.engine.test_clocks import POLICIES, T0, at, ticket

HOUR = 3600.0


def owed(t, minutes: float, min_age: float = HOUR):
    return owed_update(evaluate_ticket(t, POLICIES, at(minutes)), T0, at(minutes), min_age)


def test_owed_once_the_update_interval_passes_without_news() -> None:
    t = ticket((30, EventKind.PUBLIC_REPLY, None))
    assert owed(t, 30 + 239) is None
    update = owed(t, 30 + 241)
    assert update is not None
    assert update.window_start == at(30)
    assert update.next_update_at == at(30 + 241 + 240)


def test_not_owed_to_a_ticket_younger_than_the_minimum_age() -> None:
    assert owed(ticket(), 241, min_age=5 * HOUR) is None
    assert owed(ticket(), 301, min_age=5 * HOUR) is not None


@pytest.mark.parametrize("status", ["resolved", "pending"])
def test_never_owed_to_a_resolved_or_waiting_ticket(status: str) -> None:
    t = ticket((30, EventKind.PUBLIC_REPLY, None), (200, EventKind.STATUS_CHANGE, status))
    assert owed(t, 600) is None


def test_an_automatic_update_opens_a_new_window() -> None:
    t = ticket((30, EventKind.PUBLIC_REPLY, None), (271, EventKind.AUTOMATIC_UPDATE, None))
    assert owed(t, 300) is None
    assert owed(t, 271 + 241).window_start == at(271)


@pytest.mark.parametrize(
    ("utc_hour", "zone", "quiet"),
    [
        (21, "Europe/Berlin", True),  # 22:00 in Berlin (winter)
        (20, "Europe/Berlin", False),
        (6, "Europe/Berlin", True),  # 07:00
        (7, "Europe/Berlin", False),  # 08:00
        (3, "America/New_York", True),  # 22:00 the evening before
        (13, "America/New_York", False),
        (23, None, True),  # the default zone, UTC
        (23, "Not/AZone", True),  # unknown zones fall back to the default
    ],
)
def test_quiet_hours_in_the_customers_zone(utc_hour: int, zone: str | None, quiet: bool) -> None:
    hours = QuietHours.parse("22:00-08:00")
    moment = datetime(2026, 1, 15, utc_hour, 0, tzinfo=UTC)
    assert hours.contains(moment, zone, "UTC") is quiet


def test_quiet_hours_within_a_day() -> None:
    hours = QuietHours.parse("12:00-13:00")
    assert hours.contains(datetime(2026, 1, 15, 12, 30, tzinfo=UTC), None, "UTC")
    assert not hours.contains(datetime(2026, 1, 15, 13, 0, tzinfo=UTC), None, "UTC")


@pytest.mark.parametrize("text", ["22:00", "10:00-10:00", "25:00-08:00", "late-early"])
def test_bad_quiet_hours_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="quiet hours"):
        QuietHours.parse(text)

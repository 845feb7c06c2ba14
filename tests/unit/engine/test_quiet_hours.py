"""When a customer's quiet hours end: the instant a skipped update is looked at again."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sla_monitor.engine.owed_updates import QuietHours

NIGHT = QuietHours.parse("22:00-08:00")


@pytest.mark.parametrize(
    ("moment", "zone", "ends"),
    [
        # Before midnight and after it, in UTC: the next 08:00.
        (datetime(2026, 3, 2, 23, 0, tzinfo=UTC), None, datetime(2026, 3, 3, 8, 0, tzinfo=UTC)),
        (datetime(2026, 3, 3, 2, 0, tzinfo=UTC), None, datetime(2026, 3, 3, 8, 0, tzinfo=UTC)),
        # In the customer's zone: 08:00 in Tokyo is 23:00 UTC the day before.
        (
            datetime(2026, 3, 2, 14, 0, tzinfo=UTC),
            "Asia/Tokyo",
            datetime(2026, 3, 2, 23, 0, tzinfo=UTC),
        ),
        # The night a DST change shortens: Berlin's 08:00 on 29 March is 06:00 UTC.
        (
            datetime(2026, 3, 28, 22, 30, tzinfo=UTC),
            "Europe/Berlin",
            datetime(2026, 3, 29, 6, 0, tzinfo=UTC),
        ),
    ],
)
def test_quiet_hours_end_at_the_next_local_end(
    moment: datetime, zone: str | None, ends: datetime
) -> None:
    assert NIGHT.contains(moment, zone, "UTC")
    assert NIGHT.ends_after(moment, zone, "UTC") == ends
    assert not NIGHT.contains(ends, zone, "UTC")


def test_an_end_inside_a_skipped_hour_moves_on_by_the_gap() -> None:
    # 02:30 does not exist in Berlin on 29 March 2026 (02:00 -> 03:00 CEST).
    quiet = QuietHours.parse("22:00-02:30")
    moment = datetime(2026, 3, 28, 23, 0, tzinfo=UTC)  # 00:00 CET
    ends = quiet.ends_after(moment, "Europe/Berlin", "UTC")
    assert ends == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 03:30 CEST
    assert ends > moment

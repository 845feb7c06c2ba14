"""Business calendar arithmetic: properties for random calendars, hand-computed tables."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sla_monitor.engine.business_calendar import BusinessCalendar, parse_hours

HOUR = 3600
OFFICE = {d: [parse_hours("09:00-17:00")] for d in range(5)}
ZONES = ["Europe/Berlin", "America/New_York", "Australia/Sydney", "UTC"]


def office(zone: str = "Europe/Berlin", **kwargs) -> BusinessCalendar:
    return BusinessCalendar("office", zone, OFFICE, **kwargs)


def local(zone: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone))


# --- properties ------------------------------------------------------------------------------

minutes = st.integers(min_value=0, max_value=24 * 60 - 15)


@st.composite
def day_hours(draw: st.DrawFn) -> list[tuple[int, int]]:
    count = draw(st.integers(min_value=0, max_value=3))
    points = sorted(set(draw(st.lists(minutes, min_size=2 * count, max_size=2 * count))))
    spans = [(points[i] * 60, points[i + 1] * 60) for i in range(0, len(points) - 1, 2)]
    if draw(st.booleans()) and spans:
        spans[-1] = (spans[-1][0], 86400)  # some days run to midnight
    return [s for s in spans if s[0] < s[1]]


@st.composite
def calendars(draw: st.DrawFn) -> BusinessCalendar:
    weekly = {d: draw(day_hours()) for d in range(7)}
    if not any(weekly.values()):
        weekly[draw(st.integers(0, 6))] = [(9 * HOUR, 17 * HOUR)]
    holidays = draw(st.lists(st.dates(date(2025, 1, 1), date(2028, 12, 31)), max_size=20))
    return BusinessCalendar("random", draw(st.sampled_from(ZONES)), weekly, holidays)


instants = st.datetimes(datetime(2025, 1, 1), datetime(2028, 1, 1)).map(
    lambda d: d.replace(tzinfo=UTC)
)
amounts = st.floats(min_value=0, max_value=30 * 24 * HOUR, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(calendar=calendars(), start=instants, seconds=amounts)
def test_forward_and_backward_agree(calendar, start, seconds) -> None:
    deadline = calendar.add_business_seconds(start, seconds)
    assert deadline >= start
    assert calendar.business_seconds(start, deadline) == pytest.approx(seconds, abs=1e-5)


@settings(max_examples=300, deadline=None)
@given(calendar=calendars(), start=instants, seconds=amounts)
def test_the_deadline_is_the_earliest_such_instant(calendar, start, seconds) -> None:
    deadline = calendar.add_business_seconds(start, seconds)
    if seconds > 0:
        earlier = deadline - timedelta(milliseconds=1)
        assert calendar.business_seconds(start, earlier) < seconds


@settings(max_examples=300, deadline=None)
@given(calendar=calendars(), points=st.lists(instants, min_size=3, max_size=3))
def test_elapsed_is_additive_and_monotonic(calendar, points) -> None:
    a, b, c = sorted(points)
    ab, bc, ac = (calendar.business_seconds(*p) for p in ((a, b), (b, c), (a, c)))
    assert ac == pytest.approx(ab + bc, abs=1e-6)
    assert 0 <= ab <= ac
    assert ac <= (c - a).total_seconds() + 1e-6


@settings(max_examples=200, deadline=None)
@given(calendar=calendars(), start=instants, first=amounts, second=amounts)
def test_adding_in_two_steps_equals_adding_once(calendar, start, first, second) -> None:
    once = calendar.add_business_seconds(start, first + second)
    twice = calendar.add_business_seconds(calendar.add_business_seconds(start, first), second)
    if second > 0:
        assert abs((once - twice).total_seconds()) < 1e-5


# --- hand-computed cases ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "country", "friday", "holiday_monday"),
    [
        # Whit Monday 2026-05-25 is a public holiday in Germany.
        ("Europe/Berlin", "DE", (2026, 5, 22), None),
        # Memorial Day 2026-05-25 in the United States.
        ("America/New_York", "US", (2026, 5, 22), None),
        # An explicit company holiday instead of a country's.
        ("Australia/Sydney", None, (2026, 3, 13), date(2026, 3, 16)),
    ],
)
def test_friday_evening_before_a_holiday_monday(zone, country, friday, holiday_monday) -> None:
    calendar = office(zone, country=country, holidays=[holiday_monday] if holiday_monday else [])
    created = local(zone, *friday, 18, 0)
    tuesday = created.date() + timedelta(days=4)
    wednesday = tuesday + timedelta(days=1)
    assert calendar.add_business_seconds(created, 1 * HOUR) == local(
        zone, tuesday.year, tuesday.month, tuesday.day, 10, 0
    )
    assert calendar.add_business_seconds(created, 8 * HOUR) == local(
        zone, tuesday.year, tuesday.month, tuesday.day, 17, 0
    )
    assert calendar.add_business_seconds(created, 9 * HOUR) == local(
        zone, wednesday.year, wednesday.month, wednesday.day, 10, 0
    )
    # Nothing of the long weekend counts, up to Tuesday 09:00.
    assert (
        calendar.business_seconds(
            created, local(zone, tuesday.year, tuesday.month, tuesday.day, 9, 0)
        )
        == 0
    )


@pytest.mark.parametrize(
    ("zone", "spring", "autumn"),
    [
        ("Europe/Berlin", (2026, 3, 29), (2026, 10, 25)),
        ("America/New_York", (2026, 3, 8), (2026, 11, 1)),
    ],
)
def test_dst_whole_days_count_real_hours(zone, spring, autumn) -> None:
    always = BusinessCalendar("24x7-local", zone, {d: [(0, 86400)] for d in range(7)})
    for day, hours in ((spring, 23), (autumn, 25)):
        midnight = local(zone, *day, 0, 0)
        next_midnight = local(zone, *(date(*day) + timedelta(days=1)).timetuple()[:3], 0, 0)
        assert always.business_seconds(midnight, next_midnight) == hours * HOUR
        assert always.add_business_seconds(midnight, hours * HOUR) == next_midnight


@pytest.mark.parametrize(
    ("zone", "spring", "autumn"),
    [
        ("Europe/Berlin", (2026, 3, 29), (2026, 10, 25)),
        ("America/New_York", (2026, 3, 8), (2026, 11, 1)),
    ],
)
def test_dst_night_shift_skips_and_repeats_an_hour(zone, spring, autumn) -> None:
    # Both zones change at 02:00 (Berlin) / 02:00 (New York) local time on a Sunday.
    night = BusinessCalendar("night", zone, {6: [parse_hours("01:00-04:00")]})
    start = local(zone, *spring, 0, 0)
    assert night.business_seconds(start, start + timedelta(hours=12)) == 2 * HOUR
    assert night.add_business_seconds(start, 2 * HOUR) == local(zone, *spring, 4, 0)
    # 1 h after 01:00 on the spring-forward night is 03:00 (02:00 never happens).
    assert night.add_business_seconds(start, 1 * HOUR) == local(zone, *spring, 3, 0)
    start = local(zone, *autumn, 0, 0)
    assert night.business_seconds(start, start + timedelta(hours=12)) == 4 * HOUR
    assert night.add_business_seconds(start, 4 * HOUR) == local(zone, *autumn, 4, 0)


def test_year_end_and_midnight() -> None:
    calendar = office(country="DE")  # Jan 1 is a holiday; Dec 31 2026 is a Thursday
    created = local("Europe/Berlin", 2026, 12, 31, 16, 30)
    assert calendar.add_business_seconds(created, 1 * HOUR) == local(
        "Europe/Berlin", 2027, 1, 4, 9, 30
    )  # Jan 1 holiday, then the weekend
    late = BusinessCalendar(
        "late",
        "UTC",
        {d: [parse_hours("20:00-24:00"), parse_hours("00:00-02:00")] for d in range(7)},
    )
    created = datetime(2026, 6, 1, 23, 0, tzinfo=UTC)
    assert late.add_business_seconds(created, 2 * HOUR) == datetime(2026, 6, 2, 1, 0, tzinfo=UTC)


def test_out_of_hours_creation_and_empty_days() -> None:
    calendar = BusinessCalendar(
        "weekdays",
        "UTC",
        {
            0: [parse_hours("09:00-12:00"), parse_hours("13:00-17:00")],
            2: [parse_hours("10:00-11:00")],
        },
    )
    monday_night = datetime(2026, 6, 1, 22, 0, tzinfo=UTC)
    # Tuesday has no hours: the 1 h after Monday 22:00 is Wednesday 10:00-11:00.
    assert calendar.add_business_seconds(monday_night, HOUR) == datetime(
        2026, 6, 3, 11, 0, tzinfo=UTC
    )
    monday_morning = datetime(2026, 6, 1, 7, 0, tzinfo=UTC)
    assert calendar.add_business_seconds(monday_morning, 4 * HOUR) == datetime(
        2026, 6, 1, 14, 0, tzinfo=UTC
    )  # skips the lunch break
    assert calendar.add_business_seconds(monday_night, 0) == monday_night


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "unknown IANA time zone"),
        ({"weekly_hours": {}}, "no business hours"),
        ({"weekly_hours": {0: [(9 * HOUR, 12 * HOUR), (11 * HOUR, 13 * HOUR)]}}, "overlap"),
        ({"country": "XX"}, "no public holidays known for country 'XX'"),
    ],
)
def test_invalid_calendars_are_rejected(kwargs, message) -> None:
    arguments = {"name": "bad", "timezone": "UTC", "weekly_hours": OFFICE, **kwargs}
    with pytest.raises(ValueError, match=message):
        BusinessCalendar(**arguments)


@pytest.mark.parametrize(
    "text", ["9-17", "09:00-08:00", "25:00-26:00", "09:60-10:00", "24:30-24:45"]
)
def test_bad_hours_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_hours(text)


def test_a_calendar_of_only_holidays_fails_instead_of_looping() -> None:
    weekday_only = BusinessCalendar(
        "rare",
        "UTC",
        {0: [parse_hours("09:00-10:00")]},
        holidays=[date(2026, 6, 1) + timedelta(weeks=w) for w in range(600)],
    )
    with pytest.raises(ValueError, match="no business hours for"):
        weekday_only.add_business_seconds(datetime(2026, 6, 1, tzinfo=UTC), HOUR)

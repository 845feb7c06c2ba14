"""Business calendar arithmetic: properties on random calendars, a minute-by-minute oracle,
and hand-computed tables (expected instants written in UTC, worked out from the zone rules)."""

from __future__ import annotations

import functools
import re
import time as timer
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays as holiday_calendars
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sla_monitor.engine.business_calendar import BusinessCalendar, parse_hours
from sla_monitor.engine.calendar_protocol import ContinuousCalendar

HOUR = 3600
US = timedelta(microseconds=1)
ZONES = ["Europe/Berlin", "America/New_York", "Australia/Sydney", "UTC"]
OFFICE = {day: [parse_hours("09:00-17:00")] for day in range(5)}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(zone: str, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone), fold=fold)


def sunday_only(zone: str, hours: str) -> BusinessCalendar:
    return BusinessCalendar("sunday", zone, {6: [parse_hours(hours)]})


# --- random calendars and an independent oracle ----------------------------------------------


@dataclass(frozen=True)
class Spec:
    """The raw inputs of a calendar, for the oracle to read without the code under test."""

    zone: str
    weekly: dict[int, list[tuple[time, time]]]
    holidays: list[date] = field(default_factory=list)
    country: str | None = None

    def build(self) -> BusinessCalendar:
        return BusinessCalendar("random", self.zone, self.weekly, self.holidays, self.country)

    def counts(self, instant: datetime) -> bool:
        wall = instant.astimezone(ZoneInfo(self.zone))
        if wall.date() in self.holidays:
            return False
        if self.country and wall.date() in public_holidays(self.country, wall.year):
            return False
        of_day = wall.time().replace(tzinfo=None, fold=0)
        return any(
            start <= of_day and (end == time(0) or of_day < end)
            for start, end in self.weekly.get(wall.weekday(), [])
        )


@functools.cache
def public_holidays(country: str, year: int) -> frozenset[date]:
    return frozenset(holiday_calendars.country_holidays(country, years=year))


def oracle_seconds(spec: Spec, start: datetime, end: datetime) -> int:
    """Counts minute by minute: exact for minute-aligned instants, hours and zone changes."""
    counted, moment = 0, start.astimezone(UTC)
    while moment < end:
        counted += 60 if spec.counts(moment) else 0
        moment += timedelta(minutes=1)
    return counted


quarter_hours = st.integers(min_value=0, max_value=96)


@st.composite
def day_hours(draw: st.DrawFn) -> list[tuple[time, time]]:
    count = draw(st.integers(min_value=0, max_value=3))
    # Points of the day, in quarter hours; 96 is midnight ending the day.
    points = sorted(set(draw(st.lists(quarter_hours, min_size=2 * count, max_size=2 * count))))
    if draw(st.booleans()):
        # Hours around the DST changes of the zones under test.
        points = sorted({*points, *draw(st.lists(st.sampled_from([4, 8, 10, 12, 16]), max_size=2))})
    spans = zip(points[0::2], points[1::2], strict=False)
    return [(time(a // 4, a % 4 * 15), time(b // 4 % 24, b % 4 * 15)) for a, b in spans]


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    weekly = {day: draw(day_hours()) for day in range(7)}
    if not any(weekly.values()):
        weekly[draw(st.integers(0, 6))] = [(time(9), time(17))]
    zone = draw(st.sampled_from(ZONES))
    holidays = draw(st.lists(st.dates(date(2024, 1, 1), date(2030, 12, 31)), max_size=30))
    country = draw(st.sampled_from([None, None, "DE", "US", "AU"]))
    return Spec(zone, weekly, holidays, country)


instants = st.datetimes(
    datetime(2024, 1, 1),
    datetime(2029, 12, 31),
    timezones=st.sampled_from(list(map(ZoneInfo, ZONES))),
)
amounts = st.one_of(
    st.floats(min_value=0, max_value=10 * 24 * HOUR, allow_nan=False),
    st.floats(min_value=0, max_value=3 * 365 * 24 * HOUR, allow_nan=False),
    st.integers(min_value=0, max_value=200).map(lambda quarters: quarters * 900.0),
)
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(spec=specs(), start=instants, seconds=amounts)
def test_deadline_and_elapsed_agree(spec: Spec, start: datetime, seconds: float) -> None:
    calendar = spec.build()
    deadline = calendar.add_business_seconds(start, seconds)
    # Compared in UTC: datetimes sharing a tzinfo compare and subtract by wall clock.
    assert deadline.astimezone(UTC) >= start.astimezone(UTC)
    assert abs(calendar.business_seconds(start, deadline) - seconds) <= 1e-6


@PROPERTY
@given(spec=specs(), start=instants, seconds=amounts)
def test_the_deadline_is_the_earliest_such_instant(
    spec: Spec, start: datetime, seconds: float
) -> None:
    calendar = spec.build()
    deadline = calendar.add_business_seconds(start, seconds)
    if round(seconds * 1e6) == 0:
        assert deadline is start
    else:
        assert calendar.business_seconds(start, deadline.astimezone(UTC) - US) < seconds


@PROPERTY
@given(spec=specs(), points=st.lists(instants, min_size=3, max_size=3))
def test_elapsed_is_additive_monotonic_and_bounded(spec: Spec, points: list[datetime]) -> None:
    calendar = spec.build()
    a, b, c = sorted(points, key=lambda point: point.astimezone(UTC))  # real order
    ab, bc, ac = (calendar.business_seconds(*pair) for pair in ((a, b), (b, c), (a, c)))
    assert abs(ac - (ab + bc)) <= 1e-6
    assert 0 <= ab <= ac
    assert ac <= (c.astimezone(UTC) - a.astimezone(UTC)).total_seconds() + 1e-6
    assert calendar.business_seconds(c, a) == 0


# Whole milliseconds: their sums round to the same microseconds as their parts.
milliseconds = st.one_of(
    st.integers(min_value=0, max_value=10 * 24 * HOUR * 1000),
    st.integers(min_value=0, max_value=3 * 365 * 24 * HOUR * 1000),
).map(lambda ms: ms / 1000)


@PROPERTY
@given(spec=specs(), start=instants, first=milliseconds, second=milliseconds)
def test_adding_in_two_steps_is_adding_once(
    spec: Spec, start: datetime, first: float, second: float
) -> None:
    calendar = spec.build()
    once = calendar.add_business_seconds(start, first + second)
    in_two = calendar.add_business_seconds(calendar.add_business_seconds(start, first), second)
    # In UTC: equality within one tzinfo ignores fold, so it cannot tell repeated hours apart.
    assert once.astimezone(UTC) == in_two.astimezone(UTC)


# Around the DST changes of 2026 in every zone under test, and a quiet week.
AROUND = [
    utc(2026, 3, 29, 1),  # Berlin spring forward
    utc(2026, 10, 25, 1),  # Berlin fall back
    utc(2026, 3, 8, 7),  # New York spring forward
    utc(2026, 11, 1, 6),  # New York fall back
    utc(2026, 4, 4, 16),  # Sydney fall back (03:00 AEDT -> 02:00 AEST)
    utc(2026, 10, 3, 16),  # Sydney spring forward (02:00 AEST -> 03:00 AEDT)
    utc(2026, 12, 31, 12),  # year end
    utc(2026, 6, 10, 12),
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=specs(),
    around=st.sampled_from(AROUND),
    offset=st.integers(min_value=-36 * 60, max_value=36 * 60),
    length=st.integers(min_value=0, max_value=48 * 60),
    share=st.floats(min_value=0, max_value=1),
)
def test_matches_counting_minute_by_minute(
    spec: Spec, around: datetime, offset: int, length: int, share: float
) -> None:
    calendar = spec.build()
    start = around + timedelta(minutes=offset)
    end = start + timedelta(minutes=length)
    expected = oracle_seconds(spec, start, end)
    assert calendar.business_seconds(start, end) == expected
    minutes = round(expected // 60 * share)
    if minutes:
        # The deadline is the end of the last counted minute.
        deadline = calendar.add_business_seconds(start, minutes * 60)
        assert oracle_seconds(spec, start, deadline) == minutes * 60
        assert spec.counts(deadline - timedelta(minutes=1))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(), start=instants, days=st.integers(min_value=0, max_value=800))
def test_long_spans_equal_the_sum_of_their_days(spec: Spec, start: datetime, days: int) -> None:
    # Long spans jump whole weeks arithmetically; day-long pieces never do.
    calendar = spec.build()
    start = start.astimezone(UTC)
    end = start + timedelta(days=days, hours=7)
    pieces, moment = 0.0, start
    while moment < end:
        following = min(moment + timedelta(hours=23), end)
        pieces += calendar.business_seconds(moment, following)
        moment = following
    assert calendar.business_seconds(start, end) == pytest.approx(pieces, abs=1e-6)
    deadline = calendar.add_business_seconds(start, pieces)
    assert deadline <= end
    assert calendar.business_seconds(deadline, end) <= 1e-6


# --- hand-computed: a long weekend --------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "country", "holidays", "friday", "tuesday_nine_utc"),
    [
        # Whit Monday 2026-05-25 is a German public holiday; CEST is UTC+2.
        ("Europe/Berlin", "DE", [], date(2026, 5, 22), utc(2026, 5, 26, 7)),
        # Memorial Day 2026-05-25 in the United States; EDT is UTC-4.
        ("America/New_York", "US", [], date(2026, 5, 22), utc(2026, 5, 26, 13)),
        # A company holiday on Monday 2026-03-16 in Sydney; AEDT is UTC+11.
        ("Australia/Sydney", None, [date(2026, 3, 16)], date(2026, 3, 13), utc(2026, 3, 16, 22)),
    ],
)
def test_friday_evening_before_a_holiday_monday(
    zone: str, country: str | None, holidays: list[date], friday: date, tuesday_nine_utc: datetime
) -> None:
    calendar = BusinessCalendar("office", zone, OFFICE, holidays, country)
    created = local(zone, friday.year, friday.month, friday.day, 18, 0)
    # Nothing counts from Friday 18:00 to Tuesday 09:00: evening, weekend, holiday.
    assert calendar.business_seconds(created, tuesday_nine_utc) == 0
    assert calendar.business_seconds(created, tuesday_nine_utc + timedelta(minutes=1)) == 60
    # 1 h target: Tuesday 10:00.
    assert calendar.add_business_seconds(created, HOUR) == tuesday_nine_utc + timedelta(hours=1)
    # 8 h target: all of Tuesday; the earliest instant is Tuesday 17:00, and Wednesday 09:00
    # (the next business second) has the same elapsed business time.
    due = calendar.add_business_seconds(created, 8 * HOUR)
    assert due == tuesday_nine_utc + timedelta(hours=8)
    wednesday_nine = tuesday_nine_utc + timedelta(days=1)
    assert calendar.business_seconds(created, wednesday_nine) == 8 * HOUR
    # One second more lands on Wednesday; 9 h is Wednesday 10:00.
    assert calendar.add_business_seconds(created, 8 * HOUR + 1) == wednesday_nine + timedelta(
        seconds=1
    )
    assert calendar.add_business_seconds(created, 9 * HOUR) == wednesday_nine + timedelta(hours=1)
    # The deadline is expressed in the creation's zone.
    assert due.tzinfo is created.tzinfo


# --- hand-computed: DST -------------------------------------------------------------------

# (zone, spring Sunday, fall Sunday, UTC instant of local midnight starting each Sunday)
DST = [
    (
        "Europe/Berlin",
        date(2026, 3, 29),
        date(2026, 10, 25),
        utc(2026, 3, 28, 23),
        utc(2026, 10, 24, 22),
    ),
    (
        "America/New_York",
        date(2026, 3, 8),
        date(2026, 11, 1),
        utc(2026, 3, 8, 5),
        utc(2026, 11, 1, 4),
    ),
]


@pytest.mark.parametrize(("zone", "spring", "fall", "spring_utc", "fall_utc"), DST)
def test_whole_days_count_real_hours_across_dst(
    zone: str, spring: date, fall: date, spring_utc: datetime, fall_utc: datetime
) -> None:
    always = BusinessCalendar("always", zone, {d: [parse_hours("00:00-24:00")] for d in range(7)})
    # From local midnight to local midnight: the spring Sunday lasts 23 h, the fall Sunday 25 h.
    spring_end, fall_end = spring_utc + timedelta(hours=23), fall_utc + timedelta(hours=25)
    assert spring_end == local(zone, spring.year, spring.month, spring.day + 1)
    assert fall_end == local(zone, fall.year, fall.month, fall.day + 1)
    assert always.business_seconds(spring_utc, spring_end) == 23 * HOUR
    assert always.business_seconds(fall_utc, fall_end) == 25 * HOUR
    assert (
        always.add_business_seconds(local(zone, *spring.timetuple()[:3]), 23 * HOUR) == spring_end
    )
    assert always.add_business_seconds(local(zone, *fall.timetuple()[:3]), 25 * HOUR) == fall_end
    # Every real second counts, whatever the wall clock says.
    assert always.business_seconds(spring_utc, spring_utc + timedelta(days=7)) == 7 * 24 * HOUR
    assert always.add_business_seconds(fall_utc, 1.5 * HOUR) == fall_utc + timedelta(hours=1.5)


@pytest.mark.parametrize(
    ("zone", "day", "midnight_utc", "total", "after_one_hour", "after_three_hours"),
    [
        # Berlin 02:00 CET -> 03:00 CEST: 01:00-02:00 CET is 00:00-01:00 UTC, 03:00-04:00 CEST
        # is 01:00-02:00 UTC.
        ("Europe/Berlin", date(2026, 3, 29), utc(2026, 3, 28, 23), 2, utc(2026, 3, 29, 1), None),
        # Berlin 03:00 CEST -> 02:00 CET: 01:00 CEST (23:00 UTC) to 04:00 CET (03:00 UTC).
        (
            "Europe/Berlin",
            date(2026, 10, 25),
            utc(2026, 10, 24, 22),
            4,
            utc(2026, 10, 25, 0),
            utc(2026, 10, 25, 2),
        ),
        # New York 02:00 EST -> 03:00 EDT: 01:00 EST (06:00 UTC) to 04:00 EDT (08:00 UTC).
        ("America/New_York", date(2026, 3, 8), utc(2026, 3, 8, 5), 2, utc(2026, 3, 8, 7), None),
        # New York 02:00 EDT -> 01:00 EST: 01:00 EDT (05:00 UTC) to 04:00 EST (09:00 UTC).
        (
            "America/New_York",
            date(2026, 11, 1),
            utc(2026, 11, 1, 4),
            4,
            utc(2026, 11, 1, 6),
            utc(2026, 11, 1, 8),
        ),
    ],
)
def test_night_hours_across_dst_skip_or_repeat_an_hour(
    zone: str,
    day: date,
    midnight_utc: datetime,
    total: int,
    after_one_hour: datetime,
    after_three_hours: datetime | None,
) -> None:
    night = sunday_only(zone, "01:00-04:00")
    assert night.business_seconds(midnight_utc, midnight_utc + timedelta(days=1)) == total * HOUR
    assert night.add_business_seconds(midnight_utc, HOUR) == after_one_hour
    if after_three_hours is not None:
        assert night.add_business_seconds(midnight_utc, 3 * HOUR) == after_three_hours
    end = night.add_business_seconds(midnight_utc, total * HOUR)
    assert end.astimezone(ZoneInfo(zone)).replace(tzinfo=None) == datetime(
        day.year, day.month, day.day, 4
    )
    # A week without a change counts the nominal 3 h.
    week_later = midnight_utc + timedelta(days=7)
    assert night.business_seconds(week_later, week_later + timedelta(days=1)) == 3 * HOUR


def test_a_boundary_in_the_skipped_hour_is_the_end_of_the_gap() -> None:
    # 02:30 never happens in Berlin on 2026-03-29: hours from 02:30 start at 03:00 CEST (01:00
    # UTC), so 02:30-05:00 is 2 h, not 1.5 h (what reading 02:30 as 03:30 would give).
    calendar = sunday_only("Europe/Berlin", "02:30-05:00")
    day = utc(2026, 3, 28, 23)
    assert calendar.business_seconds(day, day + timedelta(days=1)) == 2 * HOUR
    assert calendar.add_business_seconds(day, 1) == utc(2026, 3, 29, 1, 0, 1)
    # Hours wholly inside the gap do not exist on that day: the next Sunday's come first.
    ghost = sunday_only("Europe/Berlin", "02:00-03:00")
    assert ghost.business_seconds(day, day + timedelta(days=1)) == 0
    assert ghost.add_business_seconds(day, 60) == utc(2026, 4, 5, 0, 1)  # 02:01 CEST


def test_an_end_in_the_skipped_hour_is_the_end_of_the_gap_too() -> None:
    # 01:00-02:30 on that night: 01:00 CET to the gap, which ends at 03:00 CEST (01:00 UTC),
    # so 1 h, not the 1.5 h that reading 02:30 with the offset before the change would give.
    calendar = sunday_only("Europe/Berlin", "01:00-02:30")
    day = utc(2026, 3, 28, 23)
    assert calendar.business_seconds(day, day + timedelta(days=1)) == HOUR
    assert calendar.add_business_seconds(day, HOUR) == utc(2026, 3, 29, 1)


def test_hours_inside_the_repeated_hour_count_twice_apart() -> None:
    # Berlin 2026-10-25: 02:15-02:45 happens at 00:15-00:45 UTC (CEST) and 01:15-01:45 (CET).
    calendar = sunday_only("Europe/Berlin", "02:15-02:45")
    day = utc(2026, 10, 24, 22)
    assert calendar.business_seconds(day, day + timedelta(days=1)) == HOUR
    assert calendar.business_seconds(utc(2026, 10, 25, 0, 45), utc(2026, 10, 25, 1, 15)) == 0
    second = calendar.add_business_seconds(day, 45 * 60)
    assert second == utc(2026, 10, 25, 1, 30)
    assert second.astimezone(ZoneInfo("Europe/Berlin")).fold == 1
    # A start given as the second 02:20 (fold=1) only has the rest of the second pass ahead.
    repeat = local("Europe/Berlin", 2026, 10, 25, 2, 20, fold=1)
    assert calendar.business_seconds(repeat, day + timedelta(days=1)) == 25 * 60


@pytest.mark.parametrize(
    ("zone", "saturday", "midnight_utc", "total_minutes", "probes"),
    [
        # Santiago, 2026-04-04 24:00 -03 -> 23:00 -04: Saturday 23:00-24:00 happens twice, the
        # second time after the first instant of Sunday's date: 22:00 -03 (01:00 UTC) through
        # Sunday 02:00 -04 (06:00 UTC), 5 h in one stretch.
        (
            "America/Santiago",
            date(2026, 4, 4),
            utc(2026, 4, 4, 3),
            300,
            [(150, utc(2026, 4, 5, 3, 30)), (300, utc(2026, 4, 5, 6))],
        ),
        # Santiago, 2026-09-05 24:00 -04 -> Sunday 01:00 -03: Sunday's 00:00-01:00 never
        # happens; Saturday 22:00-24:00 -04 is 02:00-04:00 UTC, Sunday 01:00-02:00 -03 is
        # 04:00-05:00 UTC.
        (
            "America/Santiago",
            date(2026, 9, 5),
            utc(2026, 9, 5, 4),
            180,
            [(120, utc(2026, 9, 6, 4)), (121, utc(2026, 9, 6, 4, 1))],
        ),
        # Goose Bay, 2010-11-07 00:01 -03 -> Saturday 23:01 -04: the clock goes back across
        # midnight. Saturday 23:00-24:00 -03 (02:00-03:00 UTC), Sunday 00:00-00:01 -03, then
        # Saturday 23:01-24:00 -04 again and Sunday 00:00-02:00 -04 (04:00-06:00 UTC).
        (
            "America/Goose_Bay",
            date(2010, 11, 6),
            utc(2010, 11, 6, 3),
            240,
            [
                (61, utc(2010, 11, 7, 3, 1)),
                (62, utc(2010, 11, 7, 3, 2)),
                (240, utc(2010, 11, 7, 6)),
            ],
        ),
    ],
)
def test_offset_changes_at_midnight_move_hours_between_dates(
    zone: str,
    saturday: date,
    midnight_utc: datetime,
    total_minutes: int,
    probes: list[tuple[int, datetime]],
) -> None:
    weekly = {5: [parse_hours("22:00-24:00")], 6: [parse_hours("00:00-02:00")]}
    if zone == "America/Goose_Bay":
        weekly = {5: [parse_hours("23:00-24:00")], 6: [parse_hours("00:00-02:00")]}
    calendar = BusinessCalendar("midnight", zone, weekly)
    assert midnight_utc == local(zone, saturday.year, saturday.month, saturday.day)
    two_days = midnight_utc + timedelta(days=2)
    assert calendar.business_seconds(midnight_utc, two_days) == total_minutes * 60
    assert oracle_seconds(Spec(zone, weekly), midnight_utc, two_days) == total_minutes * 60
    for minutes, due in probes:
        assert calendar.add_business_seconds(midnight_utc, minutes * 60) == due


def test_office_weeks_across_dst_are_forty_hours() -> None:
    calendar = BusinessCalendar("office", "Europe/Berlin", OFFICE)
    for monday in (date(2026, 3, 23), date(2026, 10, 19)):
        start = local("Europe/Berlin", monday.year, monday.month, monday.day)
        assert calendar.business_seconds(start, start + timedelta(days=14)) == 80 * HOUR
    # Friday 16:00 CET + 2 h crosses the spring-forward weekend: Monday 10:00 CEST (08:00 UTC).
    friday = local("Europe/Berlin", 2026, 3, 27, 16)
    assert calendar.add_business_seconds(friday, 2 * HOUR) == utc(2026, 3, 30, 8)


# --- hand-computed: midnight, year end, empty days, out of hours -----------------------------


def test_hours_running_through_midnight() -> None:
    late = BusinessCalendar(
        "late",
        "UTC",
        {day: [parse_hours("00:00-02:00"), parse_hours("20:00-24:00")] for day in range(7)},
        holidays=[date(2026, 6, 3)],
    )
    assert late.add_business_seconds(utc(2026, 6, 1, 23), 2 * HOUR) == utc(2026, 6, 2, 1)
    assert late.business_seconds(utc(2026, 6, 1, 19), utc(2026, 6, 2, 3)) == 6 * HOUR
    # June 3 is a holiday: its 00:00-02:00 and 20:00-24:00 go; June 2's evening stays.
    assert late.business_seconds(utc(2026, 6, 2, 19), utc(2026, 6, 4, 3)) == 6 * HOUR
    assert late.add_business_seconds(utc(2026, 6, 2, 23), 2 * HOUR) == utc(2026, 6, 4, 1)
    # Exactly at midnight, with both sides counting, the deadline does not stop there.
    assert late.add_business_seconds(utc(2026, 6, 1, 22), 2 * HOUR) == utc(2026, 6, 2, 0)
    assert late.add_business_seconds(utc(2026, 6, 1, 22), 2 * HOUR + 1) == utc(2026, 6, 2, 0, 0, 1)


@pytest.mark.parametrize(
    ("zone", "country", "offset_hours"),
    [("Europe/Berlin", "DE", 1), ("America/New_York", "US", -5)],
)
def test_year_end(zone: str, country: str, offset_hours: int) -> None:
    # 2025-12-31 is a Wednesday, New Year's Day a Thursday holiday, 2026-01-02 a Friday.
    calendar = BusinessCalendar("office", zone, OFFICE, country=country)
    created = local(zone, 2025, 12, 31, 16)
    due = calendar.add_business_seconds(created, 2 * HOUR)
    assert due == utc(2026, 1, 2, 10 - offset_hours)
    assert calendar.business_seconds(created, utc(2026, 1, 2, 9 - offset_hours)) == HOUR
    # Dec 31, 2026 is a Thursday; Jan 1 2027 a holiday Friday; then the weekend.
    created = local(zone, 2026, 12, 31, 16, 30)
    assert calendar.add_business_seconds(created, HOUR) == utc(2027, 1, 4, 9 - offset_hours, 30)


def test_days_without_hours_and_creation_out_of_hours() -> None:
    calendar = BusinessCalendar(
        "sparse",
        "UTC",
        {
            0: [parse_hours("09:00-12:00"), parse_hours("13:00-17:00")],
            2: [parse_hours("10:00-11:00")],
        },
    )
    monday_night = utc(2026, 6, 1, 22)
    # Tuesday has no hours: 1 h after Monday 22:00 is Wednesday 10:00-11:00.
    assert calendar.add_business_seconds(monday_night, HOUR) == utc(2026, 6, 3, 11)
    # Before opening, across the lunch break.
    assert calendar.add_business_seconds(utc(2026, 6, 1, 7), 4 * HOUR) == utc(2026, 6, 1, 14)
    assert calendar.business_seconds(utc(2026, 6, 1, 11), utc(2026, 6, 1, 14)) == 2 * HOUR
    # The earliest instant after 0 s is the start itself, even out of hours.
    assert calendar.add_business_seconds(monday_night, 0) is monday_night
    # Saturday creation: the week's 8 h are used up on Wednesday 11:00; 1 s more is next Monday.
    saturday = utc(2026, 6, 6, 12)
    assert calendar.add_business_seconds(saturday, 8 * HOUR) == utc(2026, 6, 10, 11)
    assert calendar.add_business_seconds(saturday, 8 * HOUR + 1) == utc(2026, 6, 15, 9, 0, 1)


def test_ten_years_are_added_without_walking_every_day() -> None:
    calendar = BusinessCalendar("office", "Europe/Berlin", OFFICE, country="DE")
    start = local("Europe/Berlin", 2026, 1, 5, 9)
    amount = 10 * 250 * 8 * HOUR
    began = timer.perf_counter()
    due = calendar.add_business_seconds(start, amount)
    elapsed = calendar.business_seconds(start, due)
    assert timer.perf_counter() - began < 1.0
    assert elapsed == amount
    # About 10 years minus German holidays (~9 per year): lands in late 2035.
    assert date(2035, 6, 1) < due.date() < date(2036, 6, 1)


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "hours"),
    [
        ("09:00-17:30", (time(9), time(17, 30))),
        (" 9:05 - 12:00 ", (time(9, 5), time(12))),
        ("00:00-24:00", (time(0), time(0))),
        ("22:00-24:00", (time(22), time(0))),
        ("22:00-00:00", (time(22), time(0))),
    ],
)
def test_parse_hours(text: str, hours: tuple[time, time]) -> None:
    assert parse_hours(text) == hours


@pytest.mark.parametrize(
    "text",
    [
        "9-17",
        "09:00-08:00",
        "09:00-09:00",
        "25:00-26:00",
        "09:60-10:00",
        "24:00-24:00",
        "23:00-24:30",
        "9 to 5",
        "",
    ],
)
def test_bad_hours_are_rejected_quoting_the_text(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        parse_hours(text)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "unknown IANA time zone 'Mars/Olympus'"),
        ({"timezone": ""}, "unknown IANA time zone ''"),
        ({"weekly_hours": {}}, "no business hours in its week"),
        ({"weekly_hours": {5: []}}, "no business hours in its week"),
        ({"weekly_hours": {7: [(time(9), time(10))]}}, r"weekdays are 0 \(Monday\) to 6"),
        (
            {"weekly_hours": {0: [(time(9), time(12)), (time(11), time(13))]}},
            "mon hours overlap: 09:00-12:00 and 11:00-13:00",
        ),
        ({"weekly_hours": {2: [(time(17), time(9))]}}, "wed hours 17:00-09:00 do not end after"),
        ({"weekly_hours": {2: [(time(9), time(9))]}}, "do not end after they start"),
        ({"weekly_hours": {0: [("09:00", "17:00")]}}, r"must be \(time, time\) pairs"),
        ({"country": "XX"}, "no public holidays known for country 'XX'"),
        ({"country": "DE", "subdivision": "XX"}, "country 'DE' subdivision 'XX'"),
        ({"subdivision": "BY"}, "needs a country"),
    ],
)
def test_invalid_calendars_are_rejected(changes: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"name": "bad", "timezone": "UTC", "weekly_hours": OFFICE}
    with pytest.raises(ValueError, match=message):
        BusinessCalendar(**{**arguments, **changes})  # type: ignore[arg-type]


def test_touching_hours_are_one_stretch() -> None:
    calendar = BusinessCalendar(
        "split", "UTC", {0: [parse_hours("13:00-17:00"), parse_hours("09:00-13:00")]}
    )
    assert calendar.add_business_seconds(utc(2026, 6, 1, 9), 8 * HOUR) == utc(2026, 6, 1, 17)


def test_naive_instants_and_infinite_amounts_are_rejected() -> None:
    calendar = BusinessCalendar("office", "UTC", OFFICE)
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar.business_seconds(datetime(2026, 6, 1), utc(2026, 6, 2))
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar.add_business_seconds(datetime(2026, 6, 1), HOUR)
    with pytest.raises(ValueError, match="cannot add inf"):
        calendar.add_business_seconds(utc(2026, 6, 1), float("inf"))


@pytest.mark.parametrize("amount", [HOUR, 100 * HOUR])
def test_a_calendar_of_only_holidays_fails_instead_of_looping(amount: int) -> None:
    # Its only hours are on Mondays, and every Monday for 12 years is a holiday.
    rare = BusinessCalendar(
        "rare",
        "UTC",
        {0: [parse_hours("09:00-10:00")]},
        holidays=[date(2026, 6, 1) + timedelta(weeks=w) for w in range(52 * 12)],
    )
    with pytest.raises(ValueError, match="'rare' has no business hours for"):
        rare.add_business_seconds(utc(2026, 6, 1), amount)
    # Measuring is bounded by the span and needs no guard.
    assert rare.business_seconds(utc(2026, 6, 1), utc(2036, 6, 1)) == 0


# --- business intervals: what explain lists -------------------------------------------------


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(), start=instants, hours=st.integers(min_value=0, max_value=60 * 24))
def test_business_intervals_cover_exactly_the_business_time(
    spec: Spec, start: datetime, hours: int
) -> None:
    calendar = spec.build()
    end = start.astimezone(UTC) + timedelta(hours=hours, minutes=7)
    intervals = list(calendar.business_intervals(start, end))
    total = 0
    cursor = start.astimezone(UTC)
    for a, b in intervals:
        assert a.tzinfo is start.tzinfo and b.tzinfo is start.tzinfo
        a, b = a.astimezone(UTC), b.astimezone(UTC)
        # In order, disjoint and maximal: a gap of no business time separates two intervals.
        assert cursor <= a < b <= end
        assert cursor == start.astimezone(UTC) or cursor < a
        assert calendar.business_microseconds(cursor, a) == 0
        total += (b - a) // US
        cursor = b
    assert calendar.business_microseconds(cursor, end) == 0
    assert total == calendar.business_microseconds(start, end)


def test_business_intervals_of_a_weekend_by_hand() -> None:
    office = BusinessCalendar("office", "Europe/Berlin", OFFICE)
    # Friday 2026-03-06 15:00 UTC (16:00 CET) to Monday 2026-03-09 11:00 UTC (12:00 CET).
    intervals = list(office.business_intervals(utc(2026, 3, 6, 15), utc(2026, 3, 9, 11)))
    assert intervals == [
        (utc(2026, 3, 6, 15), utc(2026, 3, 6, 16)),
        (utc(2026, 3, 9, 8), utc(2026, 3, 9, 11)),
    ]
    assert all(a.tzinfo is UTC and b.tzinfo is UTC for a, b in intervals)
    # Expressed in the start's zone.
    berlin = local("Europe/Berlin", 2026, 3, 6, 16)
    assert list(office.business_intervals(berlin, utc(2026, 3, 6, 20))) == [
        (berlin, local("Europe/Berlin", 2026, 3, 6, 17))
    ]
    assert list(office.business_intervals(utc(2026, 3, 7), utc(2026, 3, 8))) == []
    assert list(office.business_intervals(utc(2026, 3, 9, 11), utc(2026, 3, 9, 10))) == []


def test_business_intervals_touching_at_midnight_are_one() -> None:
    # Monday 2026-06-01 all day, then Tuesday until noon: one stretch, not one per day.
    hours = {0: [parse_hours("00:00-24:00")], 1: [parse_hours("00:00-12:00")]}
    calendar = BusinessCalendar("days", "UTC", hours)
    assert list(calendar.business_intervals(utc(2026, 6, 1, 5), utc(2026, 6, 3))) == [
        (utc(2026, 6, 1, 5), utc(2026, 6, 2, 12))
    ]


def test_business_intervals_reject_naive_instants_at_once() -> None:
    calendar = BusinessCalendar("office", "UTC", OFFICE)
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar.business_intervals(datetime(2026, 6, 1), utc(2026, 6, 2))


def test_the_24x7_calendar_is_one_business_interval() -> None:
    calendar = ContinuousCalendar()
    berlin = local("Europe/Berlin", 2026, 3, 6, 16)
    assert list(calendar.business_intervals(berlin, utc(2026, 3, 9))) == [
        (berlin, utc(2026, 3, 9).astimezone(berlin.tzinfo))
    ]
    assert list(calendar.business_intervals(berlin, berlin)) == []

"""Business hours in a time zone, with holidays: which real seconds count towards an SLA.

Rules:
- Business hours are local wall-clock intervals per weekday (several per day allowed;
  ``24:00`` ends a day). What counts is real elapsed time inside them: on a spring-forward
  night an hour that does not exist does not count, on a fall-back night the repeated hour
  counts twice.
- A boundary that falls in a skipped hour is taken with the offset before the change (fold=0),
  i.e. it lands just after the gap; one that falls in a repeated hour is its first occurrence.
- Holidays (explicit dates, and optionally a country's public holidays) have no business hours.
- ``add_business_seconds(t, 0)`` is ``t`` itself; otherwise it is the earliest instant at which
  that many business seconds have passed, so it always lies inside or at the end of an interval.

Both operations step day by day over precomputed intervals (never minute by minute).
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holiday_calendars

DAY = 86400
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# A calendar with no business time for this long is broken, not slow.
_MAX_DAYS_WITHOUT_HOURS = 366 * 5
_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")

Span = tuple[int, int]  # seconds since local midnight, [start, end), end <= 86400


def parse_hours(text: str) -> Span:
    """``"09:00-17:30"`` -> (32400, 63000); ``"00:00-24:00"`` is the whole day."""
    match = _HOURS.match(text)
    if not match:
        raise ValueError(f"expected business hours like '09:00-17:00', got {text!r}")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if m1 > 59 or m2 > 59 or h1 > 23 or h2 > 24 or (h2 == 24 and m2 != 0):
        raise ValueError(f"not a time of day in {text!r}")
    start, end = h1 * 3600 + m1 * 60, h2 * 3600 + m2 * 60
    if start >= end:
        raise ValueError(f"business hours {text!r} end before they start")
    return start, end


class BusinessCalendar:
    """A named business calendar: weekly hours in an IANA zone, minus holidays."""

    def __init__(
        self,
        name: str,
        timezone: str,
        weekly_hours: Mapping[int, Sequence[Span]],
        holidays: Iterable[date] = (),
        country: str | None = None,
        subdivision: str | None = None,
    ) -> None:
        self.name = name
        try:
            self.zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {timezone!r}") from None
        self.weekly: dict[int, tuple[Span, ...]] = {}
        for weekday in range(7):
            spans = sorted(weekly_hours.get(weekday, ()))
            for (_, end), (start, _) in itertools.pairwise(spans):
                if start < end:
                    raise ValueError(f"{WEEKDAYS[weekday]}: business hours overlap")
            self.weekly[weekday] = tuple(spans)
        if not any(self.weekly.values()):
            raise ValueError(f"calendar {name!r} has no business hours in its week")
        self.holidays = frozenset(holidays)
        self.public_holidays = None
        if country is not None:
            try:
                self.public_holidays = holiday_calendars.country_holidays(
                    country, subdiv=subdivision
                )
            except NotImplementedError:
                raise ValueError(
                    f"no public holidays known for country {country!r}"
                    + (f" subdivision {subdivision!r}" if subdivision else "")
                ) from None
        self._spans = functools.lru_cache(maxsize=8192)(self._compute_spans)

    def is_holiday(self, day: date) -> bool:
        return day in self.holidays or (
            self.public_holidays is not None and day in self.public_holidays
        )

    def _compute_spans(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        """The day's business intervals as aware instants, in order."""
        if self.is_holiday(day):
            return ()
        # Kept in UTC: arithmetic between two datetimes of one zone is wall-clock arithmetic.
        midnight = datetime.combine(day, time(0), tzinfo=self.zone).astimezone(UTC)
        next_midnight = datetime.combine(
            day + timedelta(days=1), time(0), tzinfo=self.zone
        ).astimezone(UTC)

        def local(seconds: int) -> datetime:
            if seconds >= DAY:
                return next_midnight
            wall = datetime.combine(
                day, time(seconds // 3600, seconds % 3600 // 60), tzinfo=self.zone
            )
            return wall.astimezone(UTC)

        spans = []
        for start, end in self.weekly[day.weekday()]:
            a, b = (midnight if start == 0 else local(start)), local(end)
            if b > a:
                spans.append((a, b))
        return tuple(spans)

    def business_seconds(self, start: datetime, end: datetime) -> float:
        if end <= start:
            return 0.0
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        total = 0.0
        day = start.astimezone(self.zone).date()
        last = end.astimezone(self.zone).date()
        while day <= last:
            for a, b in self._spans(day):
                low, high = max(a, start), min(b, end)
                if high > low:
                    total += (high - low).total_seconds()
            day += timedelta(days=1)
        return total

    def add_business_seconds(self, start: datetime, seconds: float) -> datetime:
        if seconds <= 0:
            return start
        start = start.astimezone(UTC)
        remaining = seconds
        day = start.astimezone(self.zone).date()
        idle_days = 0
        while True:
            spans = self._spans(day)
            for a, b in spans:
                low = max(a, start)
                if b <= low:
                    continue
                available = (b - low).total_seconds()
                if available >= remaining:
                    return (low + timedelta(seconds=remaining)).astimezone(self.zone)
                remaining -= available
            idle_days = 0 if spans else idle_days + 1
            if idle_days > _MAX_DAYS_WITHOUT_HOURS:
                raise ValueError(
                    f"calendar {self.name!r} has no business hours for {idle_days} days "
                    f"after {day.isoformat()}"
                )
            day += timedelta(days=1)

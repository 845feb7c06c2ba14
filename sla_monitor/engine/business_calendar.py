"""Business hours in a time zone, minus holidays: which real seconds count towards an SLA.

Rules:
- Business hours are local wall-clock intervals ``[start, end)`` per weekday (0 = Monday;
  several per day). An end of ``time(0, 0)`` means midnight at the *end* of the day (config
  writes it ``"24:00"``), so ``(time(0), time(0))`` is the whole day.
- A real instant counts when its local wall-clock time, read with the offset in force at that
  instant, lies in the business hours of its local date and that date is not a holiday. What
  is counted is real elapsed time:
  - spring forward: wall times that never happen do not count. A boundary inside the skipped
    hour therefore acts as the end of the gap (``02:30-05:00`` on a 02:00->03:00 night counts
    03:00-05:00, 2 h; ``01:00-04:00`` counts 2 h);
  - fall back: wall times that happen twice count twice (``01:00-04:00`` on a 03:00->02:00
    night counts 4 h; ``02:15-02:45`` counts two separate half hours).
  A clock that jumps across midnight (Santiago: Saturday 24:00 -> 23:00) is handled the same
  way: the repeated Saturday hour counts as Saturday's, though it follows Sunday's first instant.
- Holidays (explicit dates, plus a country's public holidays computed lazily per year) have no
  business hours; hours of the previous day running to midnight are not affected.
- Arithmetic is exact to the microsecond (the resolution of ``datetime``): ``seconds`` is
  rounded to the nearest microsecond, so ``business_seconds(a, add_business_seconds(a, s))``
  is within 0.5 us of ``s``, and ``business_seconds`` is exactly additive.
- ``add_business_seconds(t, s)`` is the earliest instant at which ``s`` business seconds have
  passed since ``t``: ``t`` itself for ``s <= 0`` (even out of hours), otherwise an instant
  inside business hours or at the end of an interval. It is expressed in ``t``'s time zone.
  It raises ValueError after 5 years without a business second (a calendar that is all
  holidays), instead of looping, and OverflowError for an instant past the end of year 9997;
  naive datetimes are rejected with ValueError.

Speed: per-day interval lists are cached; long spans are measured, and long additions jump
whole weeks, by arithmetic on the nominal weekly total corrected only on "special" days
(holidays and days near a UTC offset change). Nothing ever steps minute by minute.
"""

from __future__ import annotations

import bisect
import functools
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holiday_calendars

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Hours = tuple[time, time]  # [start, end) local wall clock; end time(0) = midnight ending the day

_US = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DAY_US = 86_400 * 1_000_000
_SAMPLE_US = 6 * 3600 * 1_000_000  # no zone changes its offset twice within 6 hours
# A calendar without a single business second for this long is broken, not slow.
_MAX_IDLE_DAYS = 366 * 5
# Days are measured with their neighbours and a year's offset changes with the next year's:
# the last years datetime can hold are out of reach.
_LAST_DAY = date(9998, 1, 1).toordinal()
_CACHE_LIMIT = 50_000
_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")

_Span = tuple[int, int]  # [start, end) in microseconds (since local midnight or the epoch)


def parse_hours(text: str) -> Hours:
    """``"09:00-17:30"`` -> ``(time(9), time(17, 30))``; an end of ``24:00`` (or ``00:00``) is
    midnight ending the day, so ``"00:00-24:00"`` is the whole day."""
    match = _HOURS.match(text)
    if not match:
        raise ValueError(f"expected business hours like '09:00-17:00', got {text!r}")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if m1 > 59 or m2 > 59 or h1 > 23 or h2 > 24 or (h2 == 24 and m2 != 0):
        raise ValueError(f"not a time of day in business hours {text!r}")
    start, end = time(h1, m1), time(0) if h2 == 24 else time(h2, m2)
    if end != time(0) and start >= end:
        raise ValueError(f"business hours {text!r} do not end after they start")
    return start, end


def _time_us(moment: time) -> int:
    seconds = moment.hour * 3600 + moment.minute * 60 + moment.second
    return seconds * 1_000_000 + moment.microsecond


def _to_us(moment: datetime) -> int:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"business time needs a timezone-aware datetime, got {moment!r}")
    return (moment - _EPOCH) // _US


class BusinessCalendar:
    """A named business calendar: weekly hours in an IANA time zone, minus holidays.

    Implements the ``Calendar`` protocol; see the module docstring for the exact rules.
    """

    def __init__(
        self,
        name: str,
        timezone: str,
        weekly_hours: Mapping[int, Sequence[Hours]],
        holidays: Iterable[date] = (),
        country: str | None = None,
        subdivision: str | None = None,
    ) -> None:
        self.name = name
        self.timezone = timezone
        try:
            self.zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"calendar {name!r}: unknown IANA time zone {timezone!r}") from None
        unknown = sorted(set(weekly_hours) - set(range(7)))
        if unknown:
            raise ValueError(f"calendar {name!r}: weekdays are 0 (Monday) to 6, got {unknown}")
        self.weekly_hours: dict[int, tuple[Hours, ...]] = {}
        self._weekly: list[tuple[_Span, ...]] = []
        for weekday in range(7):
            hours = tuple(weekly_hours.get(weekday, ()))
            self.weekly_hours[weekday] = hours
            self._weekly.append(_day_spans(name, WEEKDAYS[weekday], hours))
        self._nominal = [sum(end - start for start, end in spans) for spans in self._weekly]
        self._week_us = sum(self._nominal)
        if self._week_us == 0:
            raise ValueError(f"calendar {name!r} has no business hours in its week")
        self.holidays = frozenset(holidays)
        self.country, self.subdivision = country, subdivision
        if country is None and subdivision is not None:
            raise ValueError(f"calendar {name!r}: subdivision {subdivision!r} needs a country")
        if country is not None:
            try:
                holiday_calendars.country_holidays(country, subdiv=subdivision, years=[])
            except NotImplementedError:
                where = f" subdivision {subdivision!r}" if subdivision else ""
                raise ValueError(
                    f"calendar {name!r}: no public holidays known for country {country!r}{where}"
                ) from None
        self._holiday_years: dict[int, frozenset[date]] = {}
        self._special_years: dict[int, tuple[int, ...]] = {}
        self._boundaries: dict[int, int] = {}
        self._pieces: dict[int, tuple[_Span, ...]] = {}
        self._totals: dict[int, int] = {}

    def __repr__(self) -> str:
        return f"BusinessCalendar({self.name!r}, {self.timezone!r})"

    # --- the Calendar protocol ------------------------------------------------------------

    def business_seconds(self, start: datetime, end: datetime) -> float:
        """Business seconds in [start, end); 0 when end <= start."""
        return self.business_microseconds(start, end) / 1e6

    def add_business_seconds(self, start: datetime, seconds: float) -> datetime:
        """The earliest instant when ``seconds`` business seconds have passed since ``start``."""
        if not math.isfinite(seconds):
            raise ValueError(f"cannot add {seconds} business seconds")
        return self.add_business_microseconds(start, round(seconds * 1e6))

    def business_microseconds(self, start: datetime, end: datetime) -> int:
        """Business microseconds in [start, end); 0 when end <= start. Exactly additive."""
        low, high = _to_us(start), _to_us(end)
        if high <= low:
            return 0
        first, last = self._day_of(low), self._day_of(high)
        if first == last:
            return self._clipped(first, low, high)
        total = self._clipped(first, low, high) + self._clipped(last, low, high)
        return total + self._range_total(first + 1, last)

    def add_business_microseconds(self, start: datetime, microseconds: int) -> datetime:
        """The earliest instant when ``microseconds`` business microseconds have passed."""
        remaining = microseconds
        if remaining <= 0:
            return start
        now = _to_us(start)
        day = self._day_of(now)
        idle = 0
        while True:
            pieces = self._day_pieces(day)
            for low, high in pieces:
                if high <= now:
                    continue
                low = max(low, now)
                if high - low >= remaining:
                    return self._from_us(low + remaining, start.tzinfo)
                remaining -= high - low
            idle = idle + 1 if not pieces else 0
            day += 1
            if day >= _LAST_DAY:
                raise OverflowError(
                    f"{microseconds} us after {start.isoformat()} is past year 9997"
                )
            if remaining > 2 * self._week_us:
                # Jump whole weeks, keeping the target strictly ahead so the day loop finds it.
                weeks = min(remaining // self._week_us - 1, (_LAST_DAY - day) // 7)
                while weeks > 0:
                    total = self._range_total(day, day + 7 * weeks)
                    if total < remaining:
                        remaining -= total
                        day += 7 * weeks
                        idle = idle + 7 * weeks if total == 0 else 0
                        break
                    weeks //= 2
            if idle > _MAX_IDLE_DAYS:
                raise ValueError(
                    f"calendar {self.name!r} has no business hours for {idle} days "
                    f"before {date.fromordinal(day).isoformat()}"
                )

    def business_intervals(
        self, start: datetime, end: datetime
    ) -> Iterator[tuple[datetime, datetime]]:
        """The business time in [start, end) as maximal disjoint intervals ``[a, b)``, in
        order, expressed in ``start``'s time zone; none when end <= start. Their lengths add up
        to ``business_microseconds(start, end)``. Lazy: a long span is walked a day at a time
        as it is read."""
        low, high = _to_us(start), _to_us(end)  # naive instants fail here, not when read
        return self._intervals(low, high, start.tzinfo)

    def _intervals(
        self, low: int, high: int, zone: tzinfo | None
    ) -> Iterator[tuple[datetime, datetime]]:
        if high <= low:
            return
        pending: _Span | None = None
        for day in range(self._day_of(low), self._day_of(high) + 1):
            for a, b in self._day_pieces(day):
                a, b = max(a, low), min(b, high)
                if a >= b:
                    continue
                if pending is not None and a <= pending[1]:  # touching across midnight
                    pending = (pending[0], max(b, pending[1]))
                    continue
                if pending is not None:
                    yield self._from_us(pending[0], zone), self._from_us(pending[1], zone)
                pending = (a, b)
        if pending is not None:
            yield self._from_us(pending[0], zone), self._from_us(pending[1], zone)

    # --- days -----------------------------------------------------------------------------

    def is_holiday(self, day: date) -> bool:
        return day in self._holidays_of(day.year)

    def _holidays_of(self, year: int) -> frozenset[date]:
        found = self._holiday_years.get(year)
        if found is None:
            found = frozenset(d for d in self.holidays if d.year == year)
            if self.country is not None:
                found |= _public_holidays(self.country, self.subdivision, year)
            self._holiday_years[year] = found
        return found

    def _boundary(self, day: int) -> int:
        """The instant (us) starting day ``day`` (an ordinal): its local midnight, fold=0.

        Days so delimited partition time in order even when a fall-back crosses midnight.
        """
        found = self._boundaries.get(day)
        if found is None:
            midnight = datetime.combine(date.fromordinal(day), time(0), tzinfo=self.zone)
            found = self._boundaries[day] = (midnight - _EPOCH) // _US
        return found

    def _day_of(self, instant: int) -> int:
        day = self._from_us(instant, self.zone).toordinal()
        while instant < self._boundary(day):
            day -= 1
        while instant >= self._boundary(day + 1):
            day += 1
        return day

    def _day_pieces(self, day: int) -> tuple[_Span, ...]:
        """Business time between the day's boundary and the next, as sorted disjoint spans."""
        found = self._pieces.get(day)
        if found is not None:
            return found
        low, high = self._boundary(day), self._boundary(day + 1)
        # Business hours of the neighbouring dates too: around an offset change the instants
        # of this day can carry their wall-clock times.
        wall: list[_Span] = []
        for other in (day - 1, day, day + 1):
            if self.is_holiday(date.fromordinal(other)):
                continue
            midnight = (other - _EPOCH_ORDINAL) * _DAY_US
            wall.extend((midnight + a, midnight + b) for a, b in self._weekly[(other + 6) % 7])
        changes, offsets = self._transitions_between(low, high)
        edges = [low, *changes, high]
        offset = _offset_at(self.zone, low)
        spans: list[_Span] = []
        for index in range(len(edges) - 1):
            if index:
                offset = offsets[index - 1]
            seg_low, seg_high = edges[index], edges[index + 1]
            for a, b in wall:
                # Instants whose wall time (instant + offset) lies in [a, b).
                a, b = max(a - offset, seg_low), min(b - offset, seg_high)
                if a < b:
                    spans.append((a, b))
        spans.sort()
        merged: list[_Span] = []
        for a, b in spans:
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
            else:
                merged.append((a, b))
        if len(self._pieces) > _CACHE_LIMIT:
            self._pieces.clear()
            self._boundaries.clear()
        found = self._pieces[day] = tuple(merged)
        return found

    def _day_total(self, day: int) -> int:
        found = self._totals.get(day)
        if found is None:
            found = sum(b - a for a, b in self._day_pieces(day))
            if len(self._totals) > _CACHE_LIMIT:
                self._totals.clear()
            self._totals[day] = found
        return found

    def _clipped(self, day: int, low: int, high: int) -> int:
        return sum(
            min(b, high) - max(a, low) for a, b in self._day_pieces(day) if b > low and a < high
        )

    def _range_total(self, first: int, stop: int) -> int:
        """Business microseconds of days [first, stop): the nominal week arithmetic, corrected
        on special days (holidays, offset changes), the only days that can differ from it."""
        if stop <= first:
            return 0
        weeks, rest = divmod(stop - first, 7)
        total = weeks * self._week_us
        total += sum(self._nominal[(first + i + 6) % 7] for i in range(rest))
        for year in range(date.fromordinal(first).year, date.fromordinal(stop - 1).year + 1):
            special = self._special_days(year)
            for day in special[
                bisect.bisect_left(special, first) : bisect.bisect_left(special, stop)
            ]:
                total += self._day_total(day) - self._nominal[(day + 6) % 7]
        return total

    def _special_days(self, year: int) -> tuple[int, ...]:
        """Ordinals of the days of ``year`` whose business time may differ from the weekday's
        nominal hours: holidays, and the days around a UTC offset change."""
        found = self._special_years.get(year)
        if found is None:
            days = {d.toordinal() for d in self._holidays_of(year)}
            for utc_year in (year - 1, year, year + 1):
                changes, offsets = self._transitions_of(utc_year)
                for change, after in zip(changes, offsets, strict=True):
                    for offset in (_offset_at(self.zone, change - 1), after):
                        # Generous: a day boundary resolved with either offset may move by a
                        # day, and the day's pieces borrow hours from both neighbours.
                        near = _EPOCH_ORDINAL + (change + offset) // _DAY_US
                        days.update(range(near - 2, near + 3))
            first, stop = date(year, 1, 1).toordinal(), date(year + 1, 1, 1).toordinal()
            found = self._special_years[year] = tuple(sorted(d for d in days if first <= d < stop))
        return found

    # --- offsets --------------------------------------------------------------------------

    def _transitions_of(self, year: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """UTC offset changes during UTC ``year``: (instants, offsets from then on), in us."""
        return _transitions(self.zone, year)

    def _transitions_between(self, low: int, high: int) -> tuple[list[int], list[int]]:
        """Offset changes strictly inside (low, high), with the offsets they start."""
        changes: list[int] = []
        offsets: list[int] = []
        first = (_EPOCH + low * _US).year
        last = (_EPOCH + high * _US).year
        for year in range(first, last + 1):
            year_changes, year_offsets = self._transitions_of(year)
            for change, offset in zip(year_changes, year_offsets, strict=True):
                if low < change < high:
                    changes.append(change)
                    offsets.append(offset)
        return changes, offsets

    @staticmethod
    def _from_us(instant: int, zone: tzinfo | None) -> datetime:
        return (_EPOCH + instant * _US).astimezone(zone)


@functools.lru_cache(maxsize=512)
def _transitions(zone: ZoneInfo, year: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """UTC offset changes of ``zone`` during UTC ``year``: (instants, offsets from then), in us.

    Found by sampling every 6 hours and bisecting to the second (tzdata changes fall on whole
    seconds; no zone changes its offset twice within 6 hours).
    """
    low = (datetime(year, 1, 1, tzinfo=UTC) - _EPOCH) // _US
    high = (datetime(year + 1, 1, 1, tzinfo=UTC) - _EPOCH) // _US
    changes: list[int] = []
    offsets: list[int] = []
    # From one second before the year, so a change at its very first instant counts.
    sample = low - 1_000_000
    previous = _offset_at(zone, sample)
    while sample < high:
        following = min(sample + _SAMPLE_US, high)
        offset = _offset_at(zone, following)
        if offset != previous:
            # Transitions fall on whole seconds: bisect in seconds.
            before, after = sample // 1_000_000, following // 1_000_000
            while after - before > 1:
                middle = (before + after) // 2
                if _offset_at(zone, middle * 1_000_000) == previous:
                    before = middle
                else:
                    after = middle
            if low <= after * 1_000_000 < high:
                changes.append(after * 1_000_000)
                offsets.append(offset)
            previous = offset
        sample = following
    return tuple(changes), tuple(offsets)


@functools.lru_cache(maxsize=512)
def _public_holidays(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    return frozenset(holiday_calendars.country_holidays(country, subdiv=subdivision, years=year))


def _offset_at(zone: ZoneInfo, instant: int) -> int:
    offset = (_EPOCH + instant * _US).astimezone(zone).utcoffset()
    assert offset is not None
    return offset // _US


def _day_spans(calendar: str, weekday: str, hours: Sequence[Hours]) -> tuple[_Span, ...]:
    spans: list[_Span] = []
    for entry in hours:
        if len(entry) != 2 or not all(isinstance(t, time) for t in entry):
            raise ValueError(
                f"calendar {calendar!r}: {weekday} hours must be (time, time) pairs, got {entry!r}"
            )
        start, end = entry
        if start.tzinfo is not None or end.tzinfo is not None:
            raise ValueError(f"calendar {calendar!r}: {weekday} hours must be local (naive) times")
        low, high = _time_us(start), _time_us(end) or _DAY_US
        if low >= high:
            raise ValueError(
                f"calendar {calendar!r}: {weekday} hours {_show(entry)} do not end after they start"
            )
        spans.append((low, high))
    spans.sort()
    for index in range(1, len(spans)):
        if spans[index][0] < spans[index - 1][1]:
            raise ValueError(
                f"calendar {calendar!r}: {weekday} hours overlap: "
                f"{_show_span(spans[index - 1])} and {_show_span(spans[index])}"
            )
    return tuple(spans)


def _show(entry: Hours) -> str:
    def clock(moment: time) -> str:
        return moment.isoformat("seconds" if moment.second or moment.microsecond else "minutes")

    start, end = entry
    return f"{clock(start)}-{'24:00' if end == time(0) else clock(end)}"


def _show_span(span: _Span) -> str:
    def clock(us: int) -> str:
        minutes = us // 60_000_000
        return f"{minutes // 60:02d}:{minutes % 60:02d}"

    return f"{clock(span[0])}-{clock(span[1])}"

"""Calendars decide which seconds count towards an SLA clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Protocol

_US = timedelta(microseconds=1)


class Calendar(Protocol):
    """Business time arithmetic. Both methods take and return timezone-aware datetimes.

    Contract: ``business_seconds(a, add_business_seconds(a, s)) == s`` for every s >= 0, and
    ``add_business_seconds`` returns the earliest instant at which s business seconds have passed.
    The ``_microseconds`` forms are the same arithmetic in exact integers (the resolution of a
    datetime): ``business_microseconds`` is additive, so the engine compares thresholds exactly.
    """

    name: str

    def business_seconds(self, start: datetime, end: datetime) -> float:
        """Business seconds in [start, end); 0 when end <= start."""
        ...

    def add_business_seconds(self, start: datetime, seconds: float) -> datetime:
        """The earliest instant when ``seconds`` business seconds have passed since ``start``."""
        ...

    def business_microseconds(self, start: datetime, end: datetime) -> int:
        """Business microseconds in [start, end); 0 when end <= start."""
        ...

    def add_business_microseconds(self, start: datetime, microseconds: int) -> datetime:
        """The earliest instant when ``microseconds`` business microseconds have passed."""
        ...

    def business_intervals(
        self, start: datetime, end: datetime
    ) -> Iterator[tuple[datetime, datetime]]:
        """The business time in [start, end) as maximal disjoint intervals, in order, in
        ``start``'s time zone; none when end <= start."""
        ...


class ContinuousCalendar:
    """24/7: every second counts."""

    name = "24x7"

    def business_seconds(self, start: datetime, end: datetime) -> float:
        if start.tzinfo is UTC and end.tzinfo is UTC:  # what the sources deliver: no conversion
            return max(0.0, (end - start).total_seconds())
        # Through UTC: subtracting two datetimes of one zone would give wall-clock time.
        return max(0.0, (end.astimezone(UTC) - start.astimezone(UTC)).total_seconds())

    def add_business_seconds(self, start: datetime, seconds: float) -> datetime:
        if start.tzinfo is UTC:
            return start + timedelta(seconds=seconds)
        return (start.astimezone(UTC) + timedelta(seconds=seconds)).astimezone(start.tzinfo)

    def business_microseconds(self, start: datetime, end: datetime) -> int:
        # Aware datetimes subtract in UTC unless they share a tzinfo object (wall time).
        if start.tzinfo is not end.tzinfo or start.tzinfo is UTC:
            return max(0, (end - start) // _US)
        return max(0, (end.astimezone(UTC) - start.astimezone(UTC)) // _US)

    def add_business_microseconds(self, start: datetime, microseconds: int) -> datetime:
        if microseconds <= 0:
            return start
        if start.tzinfo is UTC:
            return start + microseconds * _US
        return (start.astimezone(UTC) + microseconds * _US).astimezone(start.tzinfo)

    def business_intervals(
        self, start: datetime, end: datetime
    ) -> Iterator[tuple[datetime, datetime]]:
        if self.business_microseconds(start, end) <= 0:
            return iter(())
        return iter(((start, end.astimezone(start.tzinfo)),))

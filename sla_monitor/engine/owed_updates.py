"""When a customer is owed a progress update (pure: the caller passes ``now``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sla_monitor.engine.clocks import TicketEvaluation
from sla_monitor.engine.model import Clock, ClockState


@dataclass(frozen=True)
class QuietHours:
    """A daily span of local time, e.g. 22:00-08:00 (may cross midnight), with no updates."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        try:
            first, second = text.split("-")
            start, end = time.fromisoformat(first.strip()), time.fromisoformat(second.strip())
        except ValueError:
            raise ValueError(f"expected quiet hours like '22:00-08:00', got {text!r}") from None
        if start == end:
            raise ValueError(f"quiet hours {text!r} start and end at the same time")
        return cls(start, end)

    def contains(self, moment: datetime, zone: str | None, default_zone: str) -> bool:
        local = moment.astimezone(_zone(zone) or _zone(default_zone)).time()
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def ends_after(self, moment: datetime, zone: str | None, default_zone: str) -> datetime:
        """The first instant after ``moment`` at which the local time is ``end``: when quiet
        hours that contain ``moment`` are over. A wall time that a DST change skips is read
        with the offset before the change, as datetime does (02:30 becomes 03:30)."""
        tz = _zone(zone) or _zone(default_zone) or UTC
        local = moment.astimezone(tz)
        day = local.date()
        for offset in range(3):
            wall = datetime.combine(day + timedelta(days=offset), self.end, tzinfo=tz)
            candidate = wall.astimezone(UTC)  # compared as instants, never as wall times
            if candidate > moment:
                return candidate.astimezone(moment.tzinfo)
        raise AssertionError("unreachable: a local time recurs every day")


def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None  # an unknown customer zone falls back to the default


@dataclass(frozen=True, slots=True)
class OwedUpdate:
    """A progress update owed for the update window that started at ``window_start``."""

    ticket_id: str
    window_start: datetime
    next_update_at: datetime


def owed_update(
    evaluation: TicketEvaluation,
    created_at: datetime,
    now: datetime,
    min_ticket_age: float,
) -> OwedUpdate | None:
    """The update owed now, if any: a ticket older than ``min_ticket_age`` whose update clock
    runs (the ticket is open, or paused in a status that does not pause the update clock, see
    the policy's ``pause``) and whose window ran out with no reply or update in it."""
    status = evaluation.clocks.get(Clock.UPDATE)
    if status is None or not status.running:
        return None
    if status.stopped or status.state is not ClockState.BREACHED:
        return None
    if (now - created_at).total_seconds() < min_ticket_age:
        return None
    return OwedUpdate(
        evaluation.ticket_id,
        status.started_at,
        now + timedelta(seconds=status.target_seconds),
    )

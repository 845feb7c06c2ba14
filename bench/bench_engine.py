"""evaluate_ticket on one ticket whose priority changes 0, 10, 20, 100 and 200 times, with a
reply, a pause and a re-open among the changes, on 24x7 and on a business-hours calendar.
Run: python bench/bench_engine.py [repeat]

Prints the median time of one evaluation: a figure, not a test (sticky breaches used to judge
every prefix of the history recursively, 2^n evaluations for n priority changes).
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import UTC, datetime, timedelta

from sla_monitor.engine import (
    ContinuousCalendar,
    EventKind,
    Policy,
    PolicyRule,
    PolicySet,
    Ticket,
    TicketEvent,
    evaluate_ticket,
)
from sla_monitor.engine.business_calendar import BusinessCalendar, parse_hours
from sla_monitor.engine.calendar_protocol import Calendar

HOUR = 3600
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def policies(calendar: Calendar) -> PolicySet:
    urgent = Policy("urgent", 900, 4 * HOUR, HOUR, calendar=calendar)
    low = Policy("low", 8 * HOUR, 72 * HOUR, None, calendar=calendar)
    return PolicySet(
        rules=(
            PolicyRule(urgent, priorities=frozenset({"urgent"})),
            PolicyRule(low, priorities=frozenset({"low"})),
        ),
        default=Policy(calendar=calendar),
    )


def ticket(changes: int) -> Ticket:
    events = [
        TicketEvent(
            T0 + timedelta(minutes=7 * i), EventKind.PRIORITY_CHANGE, ("urgent", "low")[i % 2]
        )
        for i in range(changes)
    ]
    events += [
        TicketEvent(T0 + timedelta(minutes=30), EventKind.PUBLIC_REPLY),
        TicketEvent(T0 + timedelta(minutes=50), EventKind.STATUS_CHANGE, "pending"),
        TicketEvent(T0 + timedelta(minutes=90), EventKind.STATUS_CHANGE, "open"),
    ]
    events.sort(key=lambda event: event.at)
    return Ticket("1", T0, "support", "new", "normal", events=tuple(events))


def main() -> None:
    repeat = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    office = BusinessCalendar(
        "office",
        "Europe/Berlin",
        {day: [parse_hours("09:00-17:00")] for day in range(5)},
        country="DE",
    )
    now = T0 + timedelta(days=3)
    print(f"{'priority changes':>16}  {'24x7':>10}  {'office hours':>12}")
    for changes in (0, 10, 20, 100, 200):
        row = []
        for calendar in (ContinuousCalendar(), office):
            rules, subject = policies(calendar), ticket(changes)
            times = []
            for _ in range(repeat):
                began = time.perf_counter()
                evaluate_ticket(subject, rules, now)
                times.append(time.perf_counter() - began)
            row.append(statistics.median(times) * 1e3)
        print(f"{changes:>16}  {row[0]:>7.3f} ms  {row[1]:>9.3f} ms")


if __name__ == "__main__":
    main()

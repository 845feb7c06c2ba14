"""100,000 deadline and 100,000 elapsed computations on a Mon-Fri 09:00-17:00 Berlin calendar
with German public holidays. Run: python bench/bench_calendar.py [N]

Targets are drawn from 1 h to 5 days (of business seconds, as SLA targets are written), starts
uniformly over two years, so most deadlines cross nights, weekends and some holidays and DST.
"""

from __future__ import annotations

import random
import sys
import time
from datetime import UTC, datetime, timedelta

from sla_monitor.engine.business_calendar import BusinessCalendar, parse_hours

HOUR = 3600
TARGETS = (1 * HOUR, 2 * HOUR, 4 * HOUR, 8 * HOUR, 24 * HOUR, 48 * HOUR, 72 * HOUR, 120 * HOUR)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    calendar = BusinessCalendar(
        "office",
        "Europe/Berlin",
        {day: [parse_hours("09:00-17:00")] for day in range(5)},
        country="DE",
    )
    rng = random.Random(1)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    starts = [base + timedelta(seconds=rng.uniform(0, 2 * 365 * 86400)) for _ in range(count)]
    targets = [float(rng.choice(TARGETS)) for _ in range(count)]

    began = time.perf_counter()
    deadlines = [
        calendar.add_business_seconds(start, target)
        for start, target in zip(starts, targets, strict=True)
    ]
    forward = time.perf_counter() - began

    began = time.perf_counter()
    elapsed = [
        calendar.business_seconds(start, deadline)
        for start, deadline in zip(starts, deadlines, strict=True)
    ]
    backward = time.perf_counter() - began

    began = time.perf_counter()
    decade = calendar.add_business_seconds(base, 10 * 250 * 8 * HOUR)
    long_add = time.perf_counter() - began

    worst = max(abs(e - t) for e, t in zip(elapsed, targets, strict=True))
    print(
        f"deadlines (add_business_seconds): {count} in {forward:.3f} s = "
        f"{forward / count * 1e6:.1f} us each"
    )
    print(
        f"elapsed (business_seconds):       {count} in {backward:.3f} s = "
        f"{backward / count * 1e6:.1f} us each"
    )
    print(f"forward/backward disagreement:    max {worst:.1e} s")
    print(f"10 years of business hours added: {long_add * 1e3:.2f} ms -> {decade.isoformat()}")


if __name__ == "__main__":
    main()

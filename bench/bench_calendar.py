"""100,000 deadline and 100,000 elapsed computations on a Mon-Fri 09:00-17:00 Berlin
calendar with German public holidays. Run: python bench/bench_calendar.py"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta

from sla_monitor.engine.business_calendar import BusinessCalendar, parse_hours

N = 100_000


def main() -> None:
    calendar = BusinessCalendar(
        "office",
        "Europe/Berlin",
        {d: [parse_hours("09:00-17:00")] for d in range(5)},
        country="DE",
    )
    rng = random.Random(1)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    starts = [base + timedelta(seconds=rng.uniform(0, 365 * 86400)) for _ in range(N)]
    targets = [rng.choice((3600, 4 * 3600, 8 * 3600, 24 * 3600, 5 * 24 * 3600)) for _ in range(N)]

    began = time.perf_counter()
    deadlines = [calendar.add_business_seconds(s, t) for s, t in zip(starts, targets, strict=True)]
    forward = time.perf_counter() - began

    began = time.perf_counter()
    elapsed = [calendar.business_seconds(s, d) for s, d in zip(starts, deadlines, strict=True)]
    backward = time.perf_counter() - began

    worst = max(abs(e - t) for e, t in zip(elapsed, targets, strict=True))
    print(f"deadlines: {N} in {forward:.3f} s = {forward / N * 1e6:.1f} us each")
    print(f"elapsed:   {N} in {backward:.3f} s = {backward / N * 1e6:.1f} us each")
    print(f"forward/backward disagreement: max {worst:.2e} s")


if __name__ == "__main__":
    main()

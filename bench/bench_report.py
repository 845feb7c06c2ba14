"""`sla-monitor report` on a year of recorded outcomes, beside the raw read of its rows.

    python bench/bench_report.py [--tickets N] [--seed S] [--repeat R] [--profile]

Creates a database (through $SLA_MONITOR_BENCH_DSN, else an embedded PostgreSQL; dropped at the
end), runs the daemon's migrations into it and loads with COPY what the daemon would have
recorded over the last 365 days for N tickets (default 1,000,000): per ticket a first_response
and a resolution completion, a breach row for each clock that missed its target (~15 %), the
resolutions spread uniformly over the year; 20 queues, 4 priorities, 3 policies, 5,000
customers in 500 organizations. Then ANALYZE.

Each report command runs as a user runs it: `python -m sla_monitor --config FILE report ...` in
a child process, stdout to a file; wall seconds (median of R), the child's peak RSS (its own
rusage, os.wait4) and the output's size. Side by side, alternated with them: the raw baseline,
`COPY (report.sql's completions query) TO STDOUT` and the same of its breaches query over the
rows the command reads (its period, widened to the churn window ending with it, as the command
reads them), so each command's cost is a ratio to reading its rows. With --profile, one run of
the year's report by organization under cProfile (the 15 costliest lines by cumulative time).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from common import fresh_database

from sla_monitor.app import churn_rules
from sla_monitor.config import Settings
from sla_monitor.report import period
from sla_monitor.sql import load_queries
from sla_monitor.store import StateStore

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
YEAR = 365 * 86400.0
CHUNK = 50_000

QUEUES = tuple(f"queue-{n:02d}" for n in range(1, 21))
PRIORITIES = ("urgent", "high", "normal", "low")
PRIORITY_WEIGHTS = (5, 20, 55, 20)
ORGANIZATIONS = 500
CUSTOMERS = 5000  # 10 per organization
GOLD_ORGANIZATIONS = 50  # the first 50 have the "gold" contract
# Targets in seconds (first_response, resolution) of the three policies, 24x7.
TARGETS = {
    "urgent": (900.0, 4 * 3600.0),
    "gold": (1800.0, 8 * 3600.0),
    "default": (3600.0, 86400.0),
}
BREACHED = 0.15  # share of clocks that cross their target

COMPLETION_COLUMNS = [
    "source",
    "ticket_id",
    "clock",
    "window_key",
    "stopped_at",
    "met",
    "elapsed_seconds",
    "priority",
    "queue",
    "recorded_at",
    "customer",
    "organization",
    "policy",
]
BREACH_COLUMNS = [
    "source",
    "ticket_id",
    "clock",
    "window_key",
    "breached_at",
    "priority",
    "queue",
    "recorded_at",
    "customer",
    "organization",
    "policy",
]

Completion = tuple[str, str, str, str, datetime, bool, float, str, str, datetime, str, str, str]
Breach = tuple[str, str, str, str, datetime, str, str, datetime, str, str, str]


def elapsed(rng: random.Random, target: float) -> float:
    """Business seconds a clock took: within its target (85 %), else past it by an
    exponentially distributed overrun (mean: the target itself)."""
    if rng.random() < BREACHED:
        return target * (1.0 + rng.expovariate(1.0))
    return target * rng.uniform(0.05, 1.0)


def outcomes(
    tickets: int, seed: int, source: str, now: datetime
) -> Iterator[tuple[list[Completion], list[Breach]]]:
    """The rows of tickets 1..N in chunks: each ticket's resolution stopped at a uniform instant
    of the year ending at ``now``; its first response after its creation and not after its
    resolution."""
    rng = random.Random(seed)
    completions: list[Completion] = []
    breaches: list[Breach] = []
    for number in range(1, tickets + 1):
        ticket_id = str(number)
        priority = rng.choices(PRIORITIES, PRIORITY_WEIGHTS)[0]
        queue = rng.choice(QUEUES)
        customer_no = rng.randrange(CUSTOMERS)
        org_no = customer_no % ORGANIZATIONS
        organization = f"org-{org_no:03d}"
        customer = f"customer-{customer_no:04d}@{organization}.example"
        if priority == "urgent":
            policy = "urgent"
        elif org_no < GOLD_ORGANIZATIONS:
            policy = "gold"
        else:
            policy = "default"
        first_target, resolution_target = TARGETS[policy]
        first = elapsed(rng, first_target)
        resolution = max(elapsed(rng, resolution_target), first)
        resolved = now - timedelta(seconds=rng.uniform(0.0, YEAR))
        created = resolved - timedelta(seconds=resolution)
        for clock, took, target in (
            ("first_response", first, first_target),
            ("resolution", resolution, resolution_target),
        ):
            stopped = created + timedelta(seconds=took)
            met = took <= target
            recorded = stopped + timedelta(seconds=15)
            completions.append(
                (
                    source,
                    ticket_id,
                    clock,
                    "",
                    stopped,
                    met,
                    took,
                    priority,
                    queue,
                    recorded,
                    customer,
                    organization,
                    policy,
                )
            )
            if not met:
                crossed = created + timedelta(seconds=target)
                breaches.append(
                    (
                        source,
                        ticket_id,
                        clock,
                        "",
                        crossed,
                        priority,
                        queue,
                        crossed + timedelta(seconds=15),
                        customer,
                        organization,
                        policy,
                    )
                )
        if number % CHUNK == 0:
            yield completions, breaches
            completions, breaches = [], []
    if completions:
        yield completions, breaches


async def load(dsn: str, settings: Settings, tickets: int, seed: int, now: datetime) -> None:
    """Migrates the daemon's schema into the database and loads the year's outcomes."""
    schema = settings.database.schema_name
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        await StateStore(pool, schema, settings.source.name).migrate()
    finally:
        await pool.close()
    began = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    try:
        completed = crossed = 0
        for completions, breaches in outcomes(tickets, seed, settings.source.name, now):
            await conn.copy_records_to_table(
                "completions", schema_name=schema, records=completions, columns=COMPLETION_COLUMNS
            )
            await conn.copy_records_to_table(
                "breaches", schema_name=schema, records=breaches, columns=BREACH_COLUMNS
            )
            completed += len(completions)
            crossed += len(breaches)
        await conn.execute("ANALYZE")
        size = await conn.fetchval("SELECT pg_database_size(current_database())")
    finally:
        await conn.close()
    print(
        f"loaded {tickets:,} tickets: {completed:,} completions, {crossed:,} breaches "
        f"({crossed / max(completed, 1):.1%} of clocks) in {time.perf_counter() - began:.1f} s; "
        f"database {size / MIB:,.0f} MiB"
    )


@dataclass
class Command:
    label: str
    args: list[str]
    period: tuple[str | None, str | None]  # (--period, --last): what the command reads
    seconds: list[float]
    rss: list[int]  # bytes
    output: int = 0  # bytes
    lines: int = 0
    raw_seconds: list[float] | None = None
    raw_bytes: int = 0
    rows: tuple[int, int] = (0, 0)  # completions, breaches read


def last_full_month(now: datetime) -> str:
    previous = now.replace(day=1) - timedelta(days=1)
    return f"{previous:%Y-%m}"


def commands(now: datetime) -> list[Command]:
    month = last_full_month(now)
    asked: list[tuple[str, list[str], tuple[str | None, str | None]]] = [
        (
            "--last 365d --by organization",
            ["--last", "365d", "--by", "organization"],
            (None, "365d"),
        ),
        (f"--period {month} --by queue", ["--period", month, "--by", "queue"], (month, None)),
        (
            "--last 30d --by customer --format html",
            ["--last", "30d", "--by", "customer", "--format", "html"],
            (None, "30d"),
        ),
        (
            "--last 365d --by queue --by priority --format csv",
            ["--last", "365d", "--by", "queue", "--by", "priority", "--format", "csv"],
            (None, "365d"),
        ),
    ]
    return [Command(label, args, span, [], []) for label, args, span in asked]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run_report(
    config: Path, args: list[str], out: Path, prefix: list[str] | None = None
) -> tuple[float, int]:
    """Runs one report command with stdout to ``out``; its wall seconds and peak RSS (bytes)."""
    argv = [
        sys.executable,
        *(prefix or ["-m", "sla_monitor"]),
        "--config",
        str(config),
        "report",
        *args,
    ]
    with out.open("wb") as stdout, tempfile.TemporaryFile() as stderr:
        began = time.perf_counter()
        child = subprocess.Popen(argv, stdout=stdout, stderr=stderr, env=child_env(), cwd=ROOT)
        _, status, usage = os.wait4(child.pid, 0)
        took = time.perf_counter() - began
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            stderr.seek(0)
            raise SystemExit(
                f"report {' '.join(args)} exited {child.returncode}: "
                f"{stderr.read().decode(errors='replace')}"
            )
    return took, usage.ru_maxrss * 1024


def read_span(
    settings: Settings, month: str | None, last: str | None, now: datetime
) -> tuple[datetime, datetime]:
    """The rows `report` reads for this period (sla_monitor.cli._report): from the earlier of
    the period's start and the churn window's, to the period's end."""
    start, end = period(None, None, month, last, now)
    window = timedelta(seconds=churn_rules(settings).window)
    return min(start, min(end, now) - window), end


async def raw_read(
    conn: asyncpg.Connection, settings: Settings, start: datetime, end: datetime
) -> tuple[float, int]:
    """Seconds and bytes of ``COPY (report.sql's queries) TO STDOUT`` over [start, end)."""
    queries = load_queries("sla_monitor.store", "report.sql")
    schema = settings.database.schema_name
    received = 0

    async def count(chunk: bytes) -> None:
        nonlocal received
        received += len(chunk)

    began = time.perf_counter()
    for name in ("completions", "breaches"):
        sql = queries[name].replace("{schema}", schema)
        await conn.copy_from_query(sql, settings.source.name, start, end, output=count)
    return time.perf_counter() - began, received


async def count_rows(
    conn: asyncpg.Connection, settings: Settings, start: datetime, end: datetime
) -> tuple[int, int]:
    schema = settings.database.schema_name
    counted = []
    for table, column in (("completions", "stopped_at"), ("breaches", "breached_at")):
        counted.append(
            await conn.fetchval(
                f"SELECT count(*) FROM {schema}.{table}"
                f" WHERE source = $1 AND {column} >= $2 AND {column} < $3",
                settings.source.name,
                start,
                end,
            )
        )
    return counted[0], counted[1]


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


async def main(args: argparse.Namespace) -> None:
    async with fresh_database() as dsn:
        settings = Settings(database={"dsn": dsn})
        now = datetime.now(UTC)
        await load(dsn, settings, args.tickets, args.seed, now)
        print(load_average())
        with tempfile.TemporaryDirectory() as folder:
            config = Path(folder) / "sla-monitor.toml"
            config.write_text(f'[database]\ndsn = "{dsn}"\n', encoding="utf-8")
            out = Path(folder) / "report.out"
            # The fixed cost: a report of a month long before any recorded outcome.
            empty = [
                run_report(config, ["--period", "2000-01"], out)[0] for _ in range(args.repeat)
            ]
            print(
                f"empty report (start-up, connect, migration check): "
                f"{statistics.median(empty):.2f} s median of {args.repeat}"
            )
            asked = commands(now)
            conn = await asyncpg.connect(dsn)
            try:
                for repeat in range(args.repeat):
                    for command in asked:
                        took, rss = run_report(config, command.args, out)
                        command.seconds.append(took)
                        command.rss.append(rss)
                        data = out.read_bytes()
                        command.output, command.lines = len(data), data.count(b"\n")
                        start, end = read_span(settings, *command.period, datetime.now(UTC))
                        seconds, received = await raw_read(conn, settings, start, end)
                        command.raw_seconds = [*(command.raw_seconds or []), seconds]
                        command.raw_bytes = received
                        if repeat == 0:
                            command.rows = await count_rows(conn, settings, start, end)
                    print(f"round {repeat + 1} of {args.repeat} done; {load_average()}")
            finally:
                await conn.close()
            print(
                f"\n{args.tickets:,} tickets over 365 days; wall seconds median of {args.repeat} "
                "(child process, start-up included), peak RSS the largest of the runs"
            )
            print(
                f"{'command (sla-monitor report ...)':<52} {'rows read (compl.+breaches)':>28} "
                f"{'raw COPY':>9} {'report':>8} {'ratio':>7} {'peak RSS':>10} {'output':>16}"
            )
            for command in asked:
                raw = statistics.median(command.raw_seconds or [0.0])
                took = statistics.median(command.seconds)
                rows = f"{command.rows[0]:,} + {command.rows[1]:,}"
                print(
                    f"{command.label:<52} {rows:>28} {raw:>8.2f}s {took:>7.2f}s "
                    f"{took / raw if raw else float('nan'):>6.1f}x "
                    f"{max(command.rss) / MIB:>6,.0f} MiB "
                    f"{command.output / 1024:>9,.0f} KiB {command.lines:>5,}l"
                )
                print(
                    f"{'':<52} raw {command.raw_bytes / MIB:,.0f} MiB; runs "
                    + ", ".join(f"{s:.2f}" for s in command.seconds)
                    + " s; raw "
                    + ", ".join(f"{s:.2f}" for s in command.raw_seconds or [])
                    + " s"
                )
            print(load_average())
            if args.profile:
                profile(config, Path(folder), asked[0])


def profile(config: Path, folder: Path, command: Command) -> None:
    """One run of ``command`` under cProfile, its 15 costliest lines by cumulative time."""
    stats = folder / "report.prof"
    took, rss = run_report(
        config,
        command.args,
        folder / "profiled.out",
        ["-m", "cProfile", "-o", str(stats), "-m", "sla_monitor"],
    )
    print(
        f"\ncProfile of `report {command.label}` ({took:.2f} s under the profiler, "
        f"{rss / MIB:,.0f} MiB; {load_average()}):"
    )
    read = pstats.Stats(str(stats), stream=sys.stdout)
    read.sort_stats("cumulative").print_stats(15)
    print("The same run, sla_monitor's own functions by cumulative time:")
    read.print_stats("sla_monitor/", 12)
    print("The same run, the 10 costliest functions by their own time:")
    read.sort_stats("tottime").print_stats(10)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="runs per command (the median)")
    parser.add_argument("--profile", action="store_true", help="profile the year's report once")
    return parser.parse_args(argv)


def run(argv: list[str] | None = None) -> None:
    asyncio.run(main(parse(argv)))


if __name__ == "__main__":
    run()

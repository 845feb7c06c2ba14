"""SLA reports and churn risk, from the rows the daemon recorded (sla_monitor.store.report).

Pure: the rows come in, a Report comes out, and the renderers turn it into text, CSV, JSON
or one self-contained HTML file. No I/O and no clock: the caller passes the period and ``now``.

Per group: the tickets (distinct ticket ids among its completions and breaches), how many
completions, met, breached, compliance (met / completions), and the median and 90th
percentile of the business time to first response and to resolution. The percentiles
interpolate linearly between the two nearest values, as PostgreSQL's percentile_cont does.
Breaches per clock count the breach rows of the period (a clock that crossed its target,
completed or not). Updates owed count the progress updates owed in the period (the update
clock's: ``--by clock`` puts them under ``update``), updates sent those of them delivered.

Over the period: the compliance of all groups per UTC day, or per ISO week (from Monday) when
the period is longer than OVER_TIME_DAILY_UP_TO; the first and last bucket are cut to the
period. The worst groups: the WORST_COUNT groups of lowest compliance among those with at
least WORST_MIN_COMPLETIONS completions, worst first.

Churn risk: a customer (or organization) is at risk when, in the window, it had at least
``min_breaches`` breached clocks, or a compliance below ``min_compliance``, or one completion
that took longer than ``max_wait``; each entry says which, with the tickets.

Churn rate (with ``[churn] churned_customers_query``): the customers at the period's start are
those with a recorded outcome in the window ending there; the rate is how many of them the
helpdesk says left during the period, over how many they were, and the same among those at
risk at the period's start and among the others.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple

GROUPINGS = ("queue", "priority", "policy", "organization", "customer", "clock")
FORMATS = ("table", "csv", "json", "html")
UNKNOWN = "(unknown)"  # a row recorded without the value (before migration 0007, or not given)
CHURN_REASONS = ("breaches", "compliance", "max_wait")
OVER_TIME_DAILY_UP_TO = timedelta(days=62)  # a longer period is shown per week
WORST_COUNT = 5  # groups in "the worst groups"
WORST_MIN_COMPLETIONS = 5  # a group with fewer completions is too small to rank


class ReportError(ValueError):
    """Bad report input (a date, a period, a grouping): the CLI exits 64 with its message."""


# The rows read are NamedTuples: a report of a year reads millions, and a tuple is built in
# a fraction of a frozen dataclass's time (bench/bench_report.py).
class CompletionRow(NamedTuple):
    ticket_id: str
    clock: str
    stopped_at: datetime
    met: bool
    elapsed_seconds: float
    priority: str
    queue: str
    policy: str | None = None
    organization: str | None = None
    customer: str | None = None


class BreachRow(NamedTuple):
    ticket_id: str
    clock: str
    breached_at: datetime
    priority: str
    queue: str
    policy: str | None = None
    organization: str | None = None
    customer: str | None = None


class UpdateRow(NamedTuple):
    """A progress update owed (at ``owed_at``); ``sent``: its outbox row was delivered, not
    cancelled. The groupings are None on rows recorded before migration 0010."""

    ticket_id: str
    owed_at: datetime
    sent: bool
    priority: str | None = None
    queue: str | None = None
    policy: str | None = None
    organization: str | None = None
    customer: str | None = None
    clock: str = "update"  # progress updates are owed by the update clock


@dataclass(frozen=True, slots=True)
class Group:
    """One line of the report: ``key`` holds one value per grouping, in the order asked."""

    key: tuple[str, ...]
    tickets: int  # distinct ticket ids among the group's completions and breaches
    completions: int
    met: int
    breached: int
    compliance: float | None  # met / completions; None without completions
    first_response_median: float | None  # seconds of business time
    first_response_p90: float | None
    resolution_median: float | None
    resolution_p90: float | None
    breaches_by_clock: dict[str, int]
    updates_owed: int = 0  # progress updates owed in the period
    updates_sent: int = 0  # of them, delivered (not cancelled)


@dataclass(frozen=True, slots=True)
class Bucket:
    """A day or week of the period (cut to it): the completions of all groups in it."""

    start: datetime
    end: datetime  # exclusive
    completions: int
    met: int

    @property
    def compliance(self) -> float | None:
        return self.met / self.completions if self.completions else None


@dataclass(frozen=True, slots=True)
class ChurnRules:
    window: float = 90 * 86400.0  # seconds
    min_breaches: int = 3
    min_compliance: float = 0.8
    max_wait: float = 48 * 3600.0  # seconds


@dataclass(frozen=True, slots=True)
class RiskReason:
    reason: str  # one of CHURN_REASONS
    detail: str
    tickets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AtRisk:
    kind: str  # "customer" or "organization"
    name: str
    reasons: tuple[RiskReason, ...]


@dataclass(frozen=True, slots=True)
class ChurnRate:
    """Customers lost in [start, end) among those known at ``start`` (an outcome recorded in
    the window ending there), overall and split by their churn risk at ``start``."""

    start: datetime
    end: datetime
    customers: int
    lost: int
    at_risk: int
    at_risk_lost: int
    others: int
    others_lost: int
    unknown_lost: int  # churned customers without an outcome in the window: not in the base

    @property
    def rate(self) -> float | None:
        return self.lost / self.customers if self.customers else None

    @property
    def at_risk_rate(self) -> float | None:
        return self.at_risk_lost / self.at_risk if self.at_risk else None

    @property
    def others_rate(self) -> float | None:
        return self.others_lost / self.others if self.others else None


@dataclass(frozen=True, slots=True)
class Report:
    start: datetime
    end: datetime  # exclusive
    by: tuple[str, ...]
    groups: tuple[Group, ...]
    at_risk: tuple[AtRisk, ...] = ()
    churn_start: datetime | None = None
    notes: tuple[str, ...] = field(default=())
    churn_rate: ChurnRate | None = None
    over_time: tuple[Bucket, ...] = ()  # the period's days (or weeks), in order


# --- input --------------------------------------------------------------------------------

_LAST = re.compile(r"^(\d+)([dhw])$")
_UNIT = {"h": 3600, "d": 86400, "w": 7 * 86400}


def _day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ReportError(f"{option}: expected a date like 2026-11-01, got {text!r}") from None


def period(
    start: str | None,
    end: str | None,
    month: str | None,
    last: str | None,
    now: datetime,
) -> tuple[datetime, datetime]:
    """The report's [start, end) in UTC from ``--from``/``--to`` (dates, both days included),
    ``--period YYYY-MM`` or ``--last 30d`` (h, d or w, ending at ``now``); the last 30 days
    without any. ReportError for anything else."""
    given = [name for name, value in (("--period", month), ("--last", last)) if value]
    if start or end:
        given.insert(0, "--from/--to")
    if len(given) > 1:
        raise ReportError(f"choose one of {', '.join(given)}")
    if month:
        match = re.fullmatch(r"(\d{4})-(\d{2})", month)
        if match is None or not 1 <= int(match.group(2)) <= 12:
            raise ReportError(f"--period: expected a month like 2026-11, got {month!r}")
        year, number = int(match.group(1)), int(match.group(2))
        first = datetime(year, number, 1, tzinfo=UTC)
        following = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)
        return first, following
    if start or end:
        if not (start and end):
            raise ReportError("--from and --to go together")
        first_day, last_day = _day(start, "--from"), _day(end, "--to")
        if first_day > last_day:
            raise ReportError(f"--from {first_day} is after --to {last_day}")
        begin = datetime.combine(first_day, datetime.min.time(), tzinfo=UTC)
        return begin, datetime.combine(last_day, datetime.min.time(), tzinfo=UTC) + timedelta(1)
    match = _LAST.fullmatch((last or "30d").strip().lower())
    if match is None or int(match.group(1)) == 0:
        raise ReportError(f"--last: expected a span like 30d, 12h or 4w, got {last!r}")
    return now - timedelta(seconds=int(match.group(1)) * _UNIT[match.group(2)]), now


def groupings(by: Sequence[str] | None) -> tuple[str, ...]:
    """The groupings asked for (``queue`` without any), each once; ReportError if unknown."""
    chosen = tuple(dict.fromkeys(by or ["queue"]))
    for name in chosen:
        if name not in GROUPINGS:
            raise ReportError(f"--by: unknown grouping {name!r} (one of {', '.join(GROUPINGS)})")
    return chosen


# --- arithmetic ---------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The ``fraction`` percentile of ``values``, interpolated linearly (percentile_cont)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


Row = CompletionRow | BreachRow | UpdateRow


def _value(row: Row, grouping: str) -> str:
    value = getattr(row, grouping)
    return UNKNOWN if value is None else str(value)


def _key(row: Row, by: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(_value(row, grouping) for grouping in by)


def build(
    completions: Iterable[CompletionRow],
    breaches: Iterable[BreachRow],
    by: tuple[str, ...],
    start: datetime,
    end: datetime,
    updates: Iterable[UpdateRow] = (),
) -> Report:
    """The report of the rows in [start, end), grouped by ``by`` (groups sorted by key)."""
    done: dict[tuple[str, ...], list[CompletionRow]] = defaultdict(list)
    crossed: dict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
    tickets: dict[tuple[str, ...], set[str]] = defaultdict(set)
    owed: dict[tuple[str, ...], list[UpdateRow]] = defaultdict(list)
    in_period = [row for row in completions if start <= row.stopped_at < end]
    for row in in_period:
        done[_key(row, by)].append(row)
        tickets[_key(row, by)].add(row.ticket_id)
    for breach in breaches:
        if start <= breach.breached_at < end:
            crossed[_key(breach, by)][breach.clock] += 1
            tickets[_key(breach, by)].add(breach.ticket_id)
    for update in updates:
        if start <= update.owed_at < end:
            owed[_key(update, by)].append(update)
    groups = []
    for key in sorted(done.keys() | crossed.keys() | owed.keys()):
        rows = done.get(key, [])
        met = sum(1 for row in rows if row.met)
        first = [row.elapsed_seconds for row in rows if row.clock == "first_response"]
        resolution = [row.elapsed_seconds for row in rows if row.clock == "resolution"]
        groups.append(
            Group(
                key=key,
                tickets=len(tickets.get(key, ())),
                completions=len(rows),
                met=met,
                breached=len(rows) - met,
                compliance=met / len(rows) if rows else None,
                first_response_median=percentile(first, 0.5),
                first_response_p90=percentile(first, 0.9),
                resolution_median=percentile(resolution, 0.5),
                resolution_p90=percentile(resolution, 0.9),
                breaches_by_clock=dict(sorted(crossed.get(key, Counter()).items())),
                updates_owed=len(owed.get(key, ())),
                updates_sent=sum(1 for update in owed.get(key, ()) if update.sent),
            )
        )
    notes = () if groups else ("no completions or breaches recorded in this period",)
    return Report(
        start, end, by, tuple(groups), notes=notes, over_time=over_time(in_period, start, end)
    )


def over_time(
    completions: Iterable[CompletionRow], start: datetime, end: datetime
) -> tuple[Bucket, ...]:
    """The completions of [start, end) per UTC day, or per ISO week (from Monday 00:00 UTC)
    when the period is longer than OVER_TIME_DAILY_UP_TO; the first and last bucket are cut
    to the period, an empty one is kept (no completions, no compliance)."""
    weekly = end - start > OVER_TIME_DAILY_UP_TO
    step = timedelta(days=7 if weekly else 1)
    first = datetime.combine(start.astimezone(UTC).date(), time(), tzinfo=UTC)
    if weekly:
        first -= timedelta(days=first.weekday())
    edges = []
    edge = first
    while edge < end:
        edges.append(edge)
        edge += step
    counts = [[0, 0] for _ in edges]
    for row in completions:
        if start <= row.stopped_at < end:
            count = counts[(row.stopped_at - first) // step]
            count[0] += 1
            count[1] += int(row.met)
    return tuple(
        Bucket(max(edge, start), min(edge + step, end), completions, met)
        for edge, (completions, met) in zip(edges, counts, strict=True)
    )


def worst_groups(
    groups: Iterable[Group],
    count: int = WORST_COUNT,
    min_completions: int = WORST_MIN_COMPLETIONS,
) -> list[Group]:
    """The ``count`` groups of lowest compliance among those with at least
    ``min_completions`` completions, worst first (then the most breached, then by key)."""
    ranked = [g for g in groups if g.completions >= min_completions and g.compliance is not None]
    ranked.sort(key=lambda g: (g.met / g.completions, -g.breached, g.key))
    return ranked[:count]


def churn_risk(
    completions: Iterable[CompletionRow],
    breaches: Iterable[BreachRow],
    rules: ChurnRules,
    now: datetime,
) -> list[AtRisk]:
    """Customers, then organizations, at risk in the window ending at ``now`` (by name)."""
    since = now - timedelta(seconds=rules.window)
    recent = [c for c in completions if since <= c.stopped_at < now]
    crossed = [b for b in breaches if since <= b.breached_at < now]
    found: list[AtRisk] = []
    for kind in ("customer", "organization"):
        done: dict[str, list[CompletionRow]] = defaultdict(list)
        broken: dict[str, list[BreachRow]] = defaultdict(list)
        for row in recent:
            if (name := getattr(row, kind)) is not None:
                done[name].append(row)
        for breach in crossed:
            if (name := getattr(breach, kind)) is not None:
                broken[name].append(breach)
        for name in sorted(done.keys() | broken.keys()):
            reasons = _reasons(done.get(name, []), broken.get(name, []), rules)
            if reasons:
                found.append(AtRisk(kind, name, tuple(reasons)))
    return found


def _reasons(
    done: list[CompletionRow], broken: list[BreachRow], rules: ChurnRules
) -> list[RiskReason]:
    reasons = []
    if len(broken) >= rules.min_breaches:
        listed = ", ".join(f"{b.ticket_id} {b.clock}" for b in broken)
        reasons.append(
            RiskReason(
                "breaches",
                f"{_plural(len(broken), 'breached clock')} (at least {rules.min_breaches}): "
                f"{listed}",
                _tickets(b.ticket_id for b in broken),
            )
        )
    if done:
        met = sum(1 for row in done if row.met)
        if met / len(done) < rules.min_compliance:
            missed = [row for row in done if not row.met]
            reasons.append(
                RiskReason(
                    "compliance",
                    f"compliance {met / len(done):.1%} of {_plural(len(done), 'completion')} "
                    f"(below {rules.min_compliance:.0%})",
                    _tickets(row.ticket_id for row in missed),
                )
            )
    waited = [row for row in done if row.elapsed_seconds > rules.max_wait]
    if waited:
        longest = max(waited, key=lambda row: row.elapsed_seconds)
        reasons.append(
            RiskReason(
                "max_wait",
                f"{_plural(len(waited), 'completion')} over {_hours(rules.max_wait)}, the longest "
                f"{_hours(longest.elapsed_seconds)} ({longest.ticket_id} {longest.clock})",
                _tickets(row.ticket_id for row in waited),
            )
        )
    return reasons


def churn_rate(
    completions: Iterable[CompletionRow],
    breaches: Iterable[BreachRow],
    churned: Iterable[str],
    rules: ChurnRules,
    start: datetime,
    end: datetime,
) -> ChurnRate:
    """The churn rate of [start, end): ``churned`` are the customers the helpdesk says left in
    it; the base and the churn risk are those of the window ending at ``start``."""
    completions, breaches = list(completions), list(breaches)
    since = start - timedelta(seconds=rules.window)
    base = {c.customer for c in completions if since <= c.stopped_at < start and c.customer}
    base |= {b.customer for b in breaches if since <= b.breached_at < start and b.customer}
    risky = {
        entry.name
        for entry in churn_risk(completions, breaches, rules, start)
        if entry.kind == "customer"
    }
    left = set(churned)
    others = base - risky
    return ChurnRate(
        start=start,
        end=end,
        customers=len(base),
        lost=len(base & left),
        at_risk=len(risky),
        at_risk_lost=len(risky & left),
        others=len(others),
        others_lost=len(others & left),
        unknown_lost=len(left - base),
    )


def churn_rate_lines(rate: ChurnRate) -> list[str]:
    """The churn rate in words (the table's and the HTML page's)."""

    def share(lost: int, of: int, value: float | None) -> str:
        return f"{lost} of {of}" + ("" if value is None else f" ({value:.1%})")

    lines = [
        f"churn rate: {share(rate.lost, rate.customers, rate.rate)} customers lost "
        f"(customers with an outcome in the window ending {rate.start:%Y-%m-%d %H:%M})",
        f"  at risk at the start: {share(rate.at_risk_lost, rate.at_risk, rate.at_risk_rate)}",
        f"  the others: {share(rate.others_lost, rate.others, rate.others_rate)}",
    ]
    if rate.unknown_lost:
        lines.append(
            f"  {_plural(rate.unknown_lost, 'churned customer')} without an outcome in that "
            "window, not counted"
        )
    return lines


def churn_rate_json(rate: ChurnRate) -> dict[str, Any]:
    return {
        "from": rate.start.isoformat(),
        "to": rate.end.isoformat(),
        "customers": rate.customers,
        "lost": rate.lost,
        "rate": rate.rate,
        "at_risk": {
            "customers": rate.at_risk,
            "lost": rate.at_risk_lost,
            "rate": rate.at_risk_rate,
        },
        "others": {"customers": rate.others, "lost": rate.others_lost, "rate": rate.others_rate},
        "unknown_lost": rate.unknown_lost,
    }


def at_risk_counts(found: Iterable[AtRisk]) -> dict[str, int]:
    """Customers and organizations at risk per reason (the gauge's values, bounded labels)."""
    counts = dict.fromkeys(CHURN_REASONS, 0)
    for entry in found:
        for reason in entry.reasons:
            counts[reason.reason] += 1
    return counts


def _tickets(ids: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(ids))


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f}h"


# --- output -------------------------------------------------------------------------------

_COLUMNS = (
    "tickets",
    "completions",
    "met",
    "breached",
    "compliance",
    "first_response_median",
    "first_response_p90",
    "resolution_median",
    "resolution_p90",
    "updates_owed",
    "updates_sent",
    "breaches",
)


def _cells(group: Group, hours: Callable[[float | None], str]) -> list[str]:
    compliance = "" if group.compliance is None else f"{group.compliance:.1%}"
    crossed = " ".join(f"{clock}={n}" for clock, n in group.breaches_by_clock.items())
    return [
        str(group.tickets),
        str(group.completions),
        str(group.met),
        str(group.breached),
        compliance,
        hours(group.first_response_median),
        hours(group.first_response_p90),
        hours(group.resolution_median),
        hours(group.resolution_p90),
        str(group.updates_owed),
        str(group.updates_sent),
        crossed,
    ]


def _short_hours(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds / 60:.0f}m" if seconds < 3600 else f"{seconds / 3600:.1f}h"


def _span(report: Report) -> str:
    last = report.end - timedelta(microseconds=1)
    return f"{report.start:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC"


def render_table(report: Report) -> str:
    """Aligned plain text (times in business hours)."""
    header = [*report.by, *_COLUMNS]
    lines = [header] + [[*g.key, *_cells(g, _short_hours)] for g in report.groups]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = [f"SLA report {_span(report)}, by {', '.join(report.by)}", ""]
    out += [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    ]
    out += [f"note: {note}" for note in report.notes]
    if report.churn_start is not None:
        out += ["", f"Customers at risk since {report.churn_start:%Y-%m-%d}:"]
        for entry in report.at_risk:
            out.append(f"  {entry.kind} {entry.name}")
            out += [f"    {reason.reason}: {reason.detail}" for reason in entry.reasons]
        if not report.at_risk:
            out.append("  none")
    if report.churn_rate is not None:
        out += ["", *churn_rate_lines(report.churn_rate)]
    return "\n".join(out) + "\n"


def render_csv(report: Report) -> str:
    """RFC 4180 (csv module, CRLF line ends); times in seconds, compliance a fraction."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    clocks = sorted({clock for g in report.groups for clock in g.breaches_by_clock})
    writer.writerow([*report.by, *_COLUMNS[:-1], *(f"breaches_{clock}" for clock in clocks)])
    for g in report.groups:
        numbers = [
            g.tickets,
            g.completions,
            g.met,
            g.breached,
            g.compliance,
            g.first_response_median,
            g.first_response_p90,
            g.resolution_median,
            g.resolution_p90,
            g.updates_owed,
            g.updates_sent,
        ]
        writer.writerow(
            [
                *g.key,
                *("" if n is None else n for n in numbers),
                *(g.breaches_by_clock.get(clock, 0) for clock in clocks),
            ]
        )
    return buffer.getvalue()


def report_json(report: Report) -> dict[str, Any]:
    return {
        "from": report.start.isoformat(),
        "to": report.end.isoformat(),
        "by": list(report.by),
        "groups": [
            {
                "key": dict(zip(report.by, g.key, strict=True)),
                "tickets": g.tickets,
                "completions": g.completions,
                "met": g.met,
                "breached": g.breached,
                "compliance": g.compliance,
                "first_response_seconds": {
                    "median": g.first_response_median,
                    "p90": g.first_response_p90,
                },
                "resolution_seconds": {"median": g.resolution_median, "p90": g.resolution_p90},
                "breaches_by_clock": g.breaches_by_clock,
                "updates_owed": g.updates_owed,
                "updates_sent": g.updates_sent,
            }
            for g in report.groups
        ],
        "at_risk": at_risk_json(report.at_risk),
        "churn_from": None if report.churn_start is None else report.churn_start.isoformat(),
        "churn_rate": None if report.churn_rate is None else churn_rate_json(report.churn_rate),
        "notes": list(report.notes),
    }


def at_risk_json(found: Iterable[AtRisk]) -> list[dict[str, Any]]:
    """The entries at risk as JSON (the report's and GET /api/v1/customers/at-risk's)."""
    return [
        {
            "kind": entry.kind,
            "name": entry.name,
            "reasons": [
                {"reason": r.reason, "detail": r.detail, "tickets": list(r.tickets)}
                for r in entry.reasons
            ],
        }
        for entry in found
    ]


def render_json(report: Report) -> str:
    return json.dumps(report_json(report), indent=2) + "\n"


_CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:.3em .6em}
th{background:#f0f0f0;text-align:left}td.n{text-align:right}
.bar{fill:#3a7}.low{fill:#c44}.vol{fill:#999}svg text{font:12px sans-serif}
.axis{stroke:#999}.floor{stroke:#c44;stroke-dasharray:4 3}"""


def _svg(report: Report, floor: float) -> str:
    """A horizontal bar per group: its compliance, red below ``floor``."""
    shown = [g for g in report.groups if g.compliance is not None]
    row, label, width = 22, 260, 300
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label + width + 60}" '
        f'height="{row * len(shown) + 10}" role="img" aria-label="compliance per group">'
    ]
    for i, g in enumerate(shown):
        assert g.compliance is not None
        y = 5 + i * row
        name = html.escape(" / ".join(g.key)[:40])
        css = "bar" if g.compliance >= floor else "bar low"
        parts.append(
            f'<text x="{label - 6}" y="{y + 14}" text-anchor="end">{name}</text>'
            f'<rect class="{css}" x="{label}" y="{y}" width="{g.compliance * width:.1f}" '
            f'height="{row - 6}"/>'
            f'<text x="{label + g.compliance * width + 4:.1f}" y="{y + 14}">'
            f"{g.compliance:.1%}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _bucket_label(bucket: Bucket, weekly: bool) -> str:
    return f"{bucket.start:%Y-%m-%d}" if weekly else f"{bucket.start:%m-%d}"


def _bucket_title(bucket: Bucket, weekly: bool) -> str:
    last = bucket.end - timedelta(microseconds=1)
    span = (
        f"week {bucket.start:%Y-%m-%d} to {last:%Y-%m-%d}" if weekly else f"{bucket.start:%Y-%m-%d}"
    )
    if bucket.compliance is None:
        return f"{span}: no completions"
    return f"{span}: {bucket.compliance:.1%} of {_plural(bucket.completions, 'completion')}"


def _over_time_svg(buckets: Sequence[Bucket], weekly: bool, floor: float) -> str:
    """A column per bucket: its compliance (red below ``floor``, the dashed line) and below,
    its completions (grey, scaled to the busiest bucket, the count written when it fits)."""
    n = max(len(buckets), 1)
    bar = max(4, min(36, 720 // n))
    left, top, high, gap, low = 48, 10, 150, 12, 40
    base = top + high  # the compliance axis
    volume = base + gap + low  # the completions' axis, below
    label = 76 if weekly else 44  # a date label's width
    every = math.ceil(label / bar)  # a date label every so many columns
    right = left + bar * n
    width = right + label  # the last label may start at the last column
    busiest = max((b.completions for b in buckets), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{volume + 34}" role="img" aria-label="compliance over the period">'
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = base - fraction * high
        parts.append(
            f'<line class="axis" x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{fraction:.0%}</text>'
        )
    parts.append(f'<text x="{left - 4}" y="{volume + 13}" text-anchor="end">n</text>')
    for i, bucket in enumerate(buckets):
        x = left + i * bar
        parts.append(f"<g><title>{html.escape(_bucket_title(bucket, weekly))}</title>")
        if bucket.compliance is not None:
            css = "bar" if bucket.compliance >= floor else "bar low"
            h = bucket.compliance * high
            parts.append(
                f'<rect class="{css}" x="{x + 1}" y="{base - h:.1f}" width="{bar - 2}" '
                f'height="{h:.1f}"/>'
            )
        h = bucket.completions / busiest * low
        parts.append(
            f'<rect class="vol" x="{x + 1}" y="{volume - h:.1f}" width="{bar - 2}" '
            f'height="{h:.1f}"/>'
        )
        if bar >= 8 * len(str(bucket.completions)):
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{volume + 13}" text-anchor="middle">'
                f"{bucket.completions}</text>"
            )
        if i % every == 0:
            parts.append(f'<text x="{x}" y="{volume + 28}">{_bucket_label(bucket, weekly)}</text>')
        parts.append("</g>")
    y = base - floor * high  # over the bars
    parts.append(f'<line class="floor" x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _over_time_html(report: Report, floor: float) -> list[str]:
    """The compliance over the period: the chart, and its figures in a table one click away."""
    e = html.escape
    buckets = report.over_time
    weekly = report.end - report.start > OVER_TIME_DAILY_UP_TO
    unit = "week (from Monday, UTC)" if weekly else "day (UTC)"
    rows = "".join(
        f"<tr><td>{e(f'{b.start:%Y-%m-%d %H:%M}')}</td>"
        f'<td class="n">{b.completions}</td><td class="n">{b.met}</td>'
        f'<td class="n">{"" if b.compliance is None else f"{b.compliance:.1%}"}</td></tr>'
        for b in buckets
    )
    return [
        "<h2>Compliance over the period</h2>",
        f"<p>Compliance of all groups per {e(unit)}, bars red below {floor:.0%} (the dashed "
        "line); below, the completions of each.</p>",
        _over_time_svg(buckets, weekly, floor),
        f"<details><summary>Per {e(unit)}</summary><table><thead><tr><th>from</th>"
        "<th>completions</th><th>met</th><th>compliance</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></details>",
    ]


def _worst_html(report: Report) -> list[str]:
    e = html.escape
    worst = worst_groups(report.groups)
    out = [
        "<h2>The worst groups</h2>",
        f"<p>The {WORST_COUNT} groups of lowest compliance among those with at least "
        f"{WORST_MIN_COMPLETIONS} completions, worst first.</p>",
    ]
    if not worst:
        out.append(f"<p>No group has at least {WORST_MIN_COMPLETIONS} completions.</p>")
        return out
    head = "".join(
        f"<th>{e(name)}</th>" for name in (*report.by, "completions", "breached", "compliance")
    )
    body = "".join(
        "<tr>"
        + "".join(f"<td>{e(cell)}</td>" for cell in g.key)
        + f'<td class="n">{g.completions}</td><td class="n">{g.breached}</td>'
        + f'<td class="n">{g.met / g.completions:.1%}</td></tr>'
        for g in worst
    )
    out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    return out


def render_html(report: Report, floor: float = 0.8) -> str:
    """One self-contained page: inline CSS and SVG, no scripts, every value escaped."""
    e = html.escape
    title = f"SLA report {_span(report)}"
    head = "".join(f"<th>{e(name)}</th>" for name in (*report.by, *_COLUMNS))
    body = "".join(
        "<tr>"
        + "".join(f"<td>{e(cell)}</td>" for cell in g.key)
        + "".join(f'<td class="n">{e(cell)}</td>' for cell in _cells(g, _short_hours))
        + "</tr>"
        for g in report.groups
    )
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1><p>By {e(', '.join(report.by))}.</p>",
        *_over_time_html(report, floor),
        *_worst_html(report),
        "<h2>Per group</h2>",
        _svg(report, floor),
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>",
    ]
    out += [f"<p><em>{e(note)}</em></p>" for note in report.notes]
    if report.churn_start is not None:
        out.append(f"<h2>Customers at risk since {report.churn_start:%Y-%m-%d}</h2>")
        items = "".join(
            f"<li><strong>{e(entry.kind)} {e(entry.name)}</strong><ul>"
            + "".join(f"<li>{e(r.reason)}: {e(r.detail)}</li>" for r in entry.reasons)
            + "</ul></li>"
            for entry in report.at_risk
        )
        out.append(f"<ul>{items}</ul>" if items else "<p>None.</p>")
    if report.churn_rate is not None:
        lines = churn_rate_lines(report.churn_rate)
        out.append(f"<h2>Churn rate</h2><p>{'<br>'.join(e(line.strip()) for line in lines)}</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


RENDERERS: dict[str, Callable[[Report], str]] = {
    "table": render_table,
    "csv": render_csv,
    "json": render_json,
    "html": render_html,
}

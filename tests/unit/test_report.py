"""Reports: outcomes carry who they were for, and the report's arithmetic by hand."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from sla_monitor.cli import main
from sla_monitor.engine import EventKind, PolicySet, Ticket, TicketEvent
from sla_monitor.report import (
    AtRisk,
    BreachRow,
    ChurnRules,
    CompletionRow,
    ReportError,
    RiskReason,
    UpdateRow,
    at_risk_counts,
    build,
    churn_rate,
    churn_risk,
    groupings,
    over_time,
    percentile,
    period,
    render_csv,
    render_html,
    render_json,
    render_table,
    worst_groups,
)
from sla_monitor.testing import MemoryStore
from sla_monitor.tracker import Tracker

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_unrecorded_outcomes_carry_the_customer_organization_and_policy() -> None:
    ticket = Ticket(
        ticket_id="7",
        created_at=T0,
        queue="support",
        initial_status="new",
        initial_priority="normal",
        events=(TicketEvent(at(5), EventKind.PUBLIC_REPLY, None),),
        customer="ann@acme.example",
        organization="Acme",
    )
    tracker = Tracker(PolicySet())
    outcomes = tracker.unrecorded(tracker.update(ticket, at(10)))
    assert outcomes is not None and outcomes.completions
    assert (outcomes.customer, outcomes.organization, outcomes.policy) == (
        "ann@acme.example",
        "Acme",
        "default",
    )
    store = MemoryStore()
    asyncio.run(store.record([outcomes], None))
    assert set(store.completion_customers.values()) == {("ann@acme.example", "Acme", "default")}


# --- the report's arithmetic, by hand ---------------------------------------------------------

START = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2026, 12, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def done(
    ticket: str,
    clock: str,
    elapsed: float,
    met: bool,
    queue: str = "support",
    when: datetime = START + DAY,
    customer: str | None = None,
    organization: str | None = None,
) -> CompletionRow:
    return CompletionRow(
        ticket, clock, when, met, elapsed, "normal", queue, "default", organization, customer
    )


def crossed(
    ticket: str,
    clock: str,
    queue: str = "support",
    when: datetime = START + DAY,
    customer: str | None = None,
    organization: str | None = None,
) -> BreachRow:
    return BreachRow(ticket, clock, when, "normal", queue, "default", organization, customer)


COMPLETIONS = [
    done("1", "first_response", 600, True),
    done("2", "first_response", 1200, True),
    done("3", "first_response", 1800, True),
    done("4", "first_response", 3600, False),
    done("1", "resolution", 7200, True),
    done("4", "resolution", 14400, False),
    done("9", "first_response", 300, True, queue="billing"),
    done("8", "first_response", 99999, False, when=END),  # after the period: left out
]
BREACHES = [
    crossed("4", "first_response"),
    crossed("4", "resolution"),
    crossed("5", "resolution", when=START - DAY),  # before the period: left out
]


def test_groups_count_and_measure_by_hand() -> None:
    report = build(COMPLETIONS, BREACHES, ("queue",), START, END)
    billing, support = report.groups
    assert support.key == ("support",)
    # Tickets 1, 2, 3, 4 (4 twice completed and twice breached: once); not 5, before.
    assert (support.tickets, billing.tickets) == (4, 1)
    assert (support.completions, support.met, support.breached) == (6, 4, 2)
    assert support.compliance == pytest.approx(4 / 6)
    # First responses 600, 1200, 1800, 3600: the median halfway between 1200 and 1800; the
    # 90th percentile at position 0.9 * 3 = 2.7, i.e. 1800 + 0.7 * (3600 - 1800).
    assert support.first_response_median == 1500
    assert support.first_response_p90 == pytest.approx(3060)
    # Resolutions 7200 and 14400: 10800 and 7200 + 0.9 * 7200.
    assert support.resolution_median == 10800
    assert support.resolution_p90 == pytest.approx(13680)
    assert support.breaches_by_clock == {"first_response": 1, "resolution": 1}
    assert billing.key == ("billing",)
    assert (billing.completions, billing.compliance, billing.first_response_p90) == (1, 1.0, 300)
    assert (billing.resolution_median, billing.breaches_by_clock) == (None, {})
    assert report.notes == ()


def test_several_groupings_make_one_key_each_and_unknown_values_say_so() -> None:
    rows = [
        done("1", "first_response", 60, True, organization="Acme"),
        done("2", "resolution", 60, False, organization="Acme"),
        done("3", "first_response", 60, False),
    ]
    report = build(
        rows,
        [crossed("2", "resolution", organization="Acme")],
        groupings(["organization", "clock", "organization"]),
        START,
        END,
    )
    assert report.by == ("organization", "clock")
    assert [(g.key, g.completions, g.met, g.breaches_by_clock) for g in report.groups] == [
        (("(unknown)", "first_response"), 1, 0, {}),
        (("Acme", "first_response"), 1, 1, {}),
        (("Acme", "resolution"), 1, 0, {"resolution": 1}),
    ]


def test_tickets_are_counted_once_across_clocks_and_per_clock_with_by_clock() -> None:
    rows = [
        done("1", "first_response", 60, True),
        done("1", "resolution", 60, True),
        done("2", "first_response", 60, False),
        done("9", "first_response", 60, True, when=END),  # after the period
    ]
    breaches = [
        crossed("2", "first_response"),
        crossed("3", "resolution"),  # breached, not completed: still a ticket
        crossed("4", "resolution", when=START - DAY),  # before the period
    ]
    [support] = build(rows, breaches, ("queue",), START, END).groups
    assert support.tickets == 3  # 1, 2 and 3
    first, resolution = build(rows, breaches, ("clock",), START, END).groups
    assert (first.key, first.tickets) == (("first_response",), 2)  # 1 and 2
    assert (resolution.key, resolution.tickets) == (("resolution",), 2)  # 1 and 3


def owed(
    ticket: str,
    sent: bool,
    when: datetime = START + DAY,
    queue: str | None = "support",
    organization: str | None = None,
) -> UpdateRow:
    return UpdateRow(ticket, when, sent, "normal", queue, "default", organization, None)


def test_updates_owed_and_sent_per_group_by_hand() -> None:
    updates = [
        owed("1", True),
        owed("1", False),  # owed, never delivered (or cancelled): not sent
        owed("2", True),
        owed("7", True, queue="billing"),
        owed("8", False, queue=None),  # recorded before migration 0010
        owed("9", True, when=END),  # after the period
        owed("9", True, when=START - DAY),  # before it
    ]
    report = build(COMPLETIONS, BREACHES, ("queue",), START, END, updates)
    assert [(g.key, g.updates_owed, g.updates_sent) for g in report.groups] == [
        (("(unknown)",), 1, 0),  # a group of updates only: no completions, no compliance
        (("billing",), 1, 1),
        (("support",), 3, 2),
    ]
    unknown = report.groups[0]
    assert (unknown.tickets, unknown.completions, unknown.compliance) == (0, 0, None)
    # By clock, updates are the update clock's.
    by_clock = build([], [], ("clock",), START, END, updates)
    assert [(g.key, g.updates_owed, g.updates_sent) for g in by_clock.groups] == [
        (("update",), 5, 3)
    ]
    [billing] = json.loads(render_json(report))["groups"][1:2]
    assert (billing["tickets"], billing["updates_owed"], billing["updates_sent"]) == (1, 1, 1)
    header, *lines = list(csv.reader(io.StringIO(render_csv(report), newline="")))
    support = dict(zip(header, lines[2], strict=True))
    assert (support["tickets"], support["updates_owed"], support["updates_sent"]) == (
        "4",
        "3",
        "2",
    )
    table = render_table(report).splitlines()
    header_line = table[2]
    assert header_line.split()[:3] == ["queue", "tickets", "completions"]
    owed_at = header_line.index("updates_owed")
    assert header_line[owed_at:].split()[:3] == ["updates_owed", "updates_sent", "breaches"]
    assert [line[owed_at:].split()[:2] for line in table[3:6]] == [
        ["1", "0"],
        ["1", "1"],
        ["3", "2"],
    ]


def test_compliance_over_a_three_day_period_is_three_daily_buckets() -> None:
    end = START + 3 * DAY
    rows = [
        done("1", "first_response", 60, True, when=START),
        done("2", "first_response", 60, False, when=START + timedelta(hours=23, minutes=59)),
        done("3", "first_response", 60, True, when=START + DAY + timedelta(hours=12)),
        done("3", "resolution", 60, True, when=START + DAY + timedelta(hours=13)),
        done("4", "first_response", 60, False, when=START + DAY + timedelta(hours=14)),
        done("5", "first_response", 60, True, when=end),  # the day after: left out
    ]
    buckets = build(rows, [], ("queue",), START, end).over_time
    assert [(b.start, b.end, b.completions, b.met, b.compliance) for b in buckets] == [
        (START, START + DAY, 2, 1, 0.5),
        (START + DAY, START + 2 * DAY, 3, 2, pytest.approx(2 / 3)),
        (START + 2 * DAY, end, 0, 0, None),  # a day without completions stays, empty
    ]
    page = render_html(build(rows, [], ("queue",), START, end))
    chart = page.split('aria-label="compliance over the period">')[1].split("</svg>")[0]
    assert chart.count("<g>") == 3  # a bar per day
    assert chart.count('class="bar') == 2  # compliance bars; the empty day has none
    assert "<title>2026-11-01: 50.0% of 2 completions</title>" in chart
    assert "<title>2026-11-02: 66.7% of 3 completions</title>" in chart
    assert "<title>2026-11-03: no completions</title>" in chart


def test_over_time_cuts_the_period_to_days_or_to_weeks_past_62_days() -> None:
    noon = START + timedelta(hours=12)
    days = over_time([], noon, noon + 2 * DAY)  # --last 2d at noon: three cut days
    assert [(b.start, b.end) for b in days] == [
        (noon, START + DAY),
        (START + DAY, START + 2 * DAY),
        (START + 2 * DAY, noon + 2 * DAY),
    ]
    assert len(over_time([], START, START + 62 * DAY)) == 62
    # 2026-11-01 is a Sunday: the weeks start on Mondays, the first cut to the period.
    rows = [done("1", "resolution", 60, True, when=START + 2 * DAY)]
    weeks = over_time(rows, START, START + 63 * DAY)
    assert (weeks[0].start, weeks[0].end) == (START, START + DAY)
    assert (weeks[1].start, weeks[1].end, weeks[1].completions) == (START + DAY, START + 8 * DAY, 1)
    assert weeks[-1].end == START + 63 * DAY and len(weeks) == 10


def test_the_worst_groups_have_enough_completions_and_come_worst_first() -> None:
    def group_of(queue: str, met: int, missed: int) -> list[CompletionRow]:
        return [
            done(f"{queue}{i}", "resolution", 60, i < met, queue=queue) for i in range(met + missed)
        ]

    rows = (
        group_of("a", 4, 1)  # 80%
        + group_of("b", 1, 3)  # 25% but 4 completions: too few to rank
        + group_of("c", 3, 2)  # 60%
        + group_of("d", 6, 4)  # 60% too, more breached: worse than c
        + group_of("e", 5, 0)  # 100%
        + group_of("f", 9, 1)  # 90%
        + group_of("g", 7, 1)  # 87.5%
    )
    report = build(rows, [], ("queue",), START, END)
    assert [g.key[0] for g in worst_groups(report.groups)] == ["d", "c", "a", "g", "f"]
    assert [g.key[0] for g in worst_groups(report.groups, count=2, min_completions=4)] == [
        "b",
        "d",
    ]
    page = render_html(report)
    worst = page.split("<h2>The worst groups</h2>")[1].split("<h2>")[0]
    assert re.findall(r"<tr><td>(\w)</td>", worst) == ["d", "c", "a", "g", "f"]
    assert '<td>d</td><td class="n">10</td><td class="n">4</td><td class="n">60.0%</td>' in worst
    small = render_html(build(group_of("b", 1, 3), [], ("queue",), START, END))
    assert "No group has at least 5 completions." in small


def test_an_empty_period_is_an_empty_report_with_a_note() -> None:
    report = build([], [], ("queue",), START, END)
    assert report.groups == ()
    assert report.notes == ("no completions or breaches recorded in this period",)
    assert "note: no completions" in render_table(report)
    assert json.loads(render_json(report))["groups"] == []


def test_percentiles_interpolate_like_percentile_cont() -> None:
    assert percentile([], 0.5) is None
    assert percentile([5.0], 0.9) == 5.0
    assert percentile([1.0, 2.0, 3.0], 0.5) == 2.0
    assert percentile([10.0, 0.0, 20.0, 30.0, 40.0], 0.9) == pytest.approx(36.0)


# --- input ----------------------------------------------------------------------------------

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_periods_from_dates_months_and_spans() -> None:
    assert period("2026-11-01", "2026-11-30", None, None, NOW) == (START, END)
    assert period(None, None, "2026-12", None, NOW) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert period(None, None, None, "30d", NOW) == (NOW - 30 * DAY, NOW)
    assert period(None, None, None, None, NOW) == (NOW - 30 * DAY, NOW)
    assert period(None, None, None, "12h", NOW) == (NOW - timedelta(hours=12), NOW)


@pytest.mark.parametrize(
    ("start", "end", "month", "last", "message"),
    [
        ("2026-11-31", "2026-12-01", None, None, "--from: expected a date"),
        ("yesterday", "2026-12-01", None, None, "--from: expected a date"),
        ("2026-12-02", "2026-12-01", None, None, "--from 2026-12-02 is after --to 2026-12-01"),
        ("2026-12-01", None, None, None, "--from and --to go together"),
        (None, None, "2026-13", None, "--period: expected a month"),
        (None, None, None, "30 days", "--last: expected a span"),
        (None, None, "2026-11", "30d", "choose one of --period, --last"),
    ],
)
def test_bad_periods_are_refused_with_a_clear_message(start, end, month, last, message) -> None:
    with pytest.raises(ReportError, match=re.escape(message)):
        period(start, end, month, last, NOW)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--from", "2026-02-30", "--to", "2026-03-01"], "--from: expected a date"),
        (["--from", "2026-03-02", "--to", "2026-03-01"], "is after --to"),
        (["--by", "team"], "--by: unknown grouping 'team'"),
        (["--format", "pdf"], "--format: unknown format 'pdf'"),
    ],
)
def test_the_command_exits_64_on_bad_input(argv, message, capsys) -> None:
    assert main(["report", *argv]) == 64
    assert message in capsys.readouterr().err


# --- output ---------------------------------------------------------------------------------

MARKUP = "<script>alert(\"x\")</script><b onmouseover='y()'>&amp;"
AWKWARD = 'Acme "Big", Inc.\nsecond line'


def test_html_is_one_self_contained_page_with_every_value_escaped() -> None:
    rows = [done("1", "first_response", 60, True, customer=MARKUP), done("2", "x", 1, False)]
    rows += [done(str(n), "resolution", 60, n != 3, customer=MARKUP) for n in range(3, 7)]
    updates = [UpdateRow("1", START + DAY, True, customer=MARKUP)]
    report = build(rows, [crossed("2", "x", customer=MARKUP)], ("customer",), START, END, updates)
    report = replace(
        report,
        at_risk=(AtRisk("customer", MARKUP, (RiskReason("breaches", MARKUP, ("2",)),)),),
        churn_start=START,
    )
    page = render_html(report)
    assert "<script" not in page and "onmouseover='" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "&amp;amp;" in page  # escaped once more, not taken for an entity
    # The worst groups name the customer too (6 completions: ranked), escaped there as well.
    worst = page.split("<h2>The worst groups</h2>")[1].split("<h2>")[0]
    assert "<td>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in worst
    # The chart over the period (30 days), and the one per group: a bar per group.
    assert page.count("<svg") == 2 and page.count('<rect class="vol"') == 30
    per_group = page.split('aria-label="compliance per group">')[1].split("</svg>")[0]
    assert per_group.count("<rect") == 2
    assert "<style>" in page and "src=" not in page and "href=" not in page
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "<th>tickets</th>" in page and "<th>updates_owed</th><th>updates_sent</th>" in page


def test_csv_round_trips_quotes_commas_and_newlines() -> None:
    rows = [done("1", "first_response", 60, True, organization=AWKWARD)]
    report = build(rows, [], ("organization", "clock"), START, END)
    text = render_csv(report)
    assert "\r\n" in text  # RFC 4180 line ends
    header, line = list(csv.reader(io.StringIO(text, newline="")))
    assert header == [
        "organization",
        "clock",
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
    ]
    assert line[:6] == [AWKWARD, "first_response", "1", "1", "1", "0"]
    assert float(line[6]) == 1.0
    assert line[-2:] == ["0", "0"]


# --- churn risk -----------------------------------------------------------------------------

RULES = ChurnRules(window=90 * 86400, min_breaches=3, min_compliance=0.8, max_wait=48 * 3600)


def test_churn_risk_says_who_is_at_risk_and_why() -> None:
    recent = NOW - 10 * DAY
    old = NOW - 100 * DAY  # outside the window
    breaches = [
        crossed(t, "resolution", when=recent, customer="a", organization="A") for t in "123"
    ]
    breaches += [crossed("4", "resolution", when=recent, customer="b", organization="B")] * 2
    breaches += [crossed("5", "resolution", when=old, customer="e")] * 5
    completions = [
        done(t, "resolution", 3600, t != "x", when=recent, customer="b") for t in "vwxyz"
    ]  # 4 of 5 met: exactly 80%, not below
    completions += [done("6", "resolution", 49 * 3600, True, when=recent, customer="c")]
    completions += [
        done("7", "first_response", 60, False, when=recent, customer="d"),
        done("8", "first_response", 60, True, when=recent, customer="d"),
    ]
    completions += [done("9", "first_response", 60, False, when=old, customer="e")]
    found = churn_risk(completions, breaches, RULES, NOW)
    assert [(e.kind, e.name, [r.reason for r in e.reasons]) for e in found] == [
        ("customer", "a", ["breaches"]),
        ("customer", "c", ["max_wait"]),
        ("customer", "d", ["compliance"]),
        ("organization", "A", ["breaches"]),
    ]
    a, c, d, _ = found
    assert a.reasons[0].tickets == ("1", "2", "3")
    assert "3 breached clocks" in a.reasons[0].detail and "1 resolution" in a.reasons[0].detail
    assert c.reasons[0].tickets == ("6",) and "49.0h" in c.reasons[0].detail
    assert d.reasons[0].tickets == ("7",) and "50.0%" in d.reasons[0].detail
    assert at_risk_counts(found) == {"breaches": 2, "compliance": 1, "max_wait": 1}


def test_the_churn_rate_counts_the_customers_known_at_the_start_by_hand() -> None:
    rules = ChurnRules(window=30 * 86400, min_breaches=2, min_compliance=0.8, max_wait=48 * 3600)
    end = START + 30 * DAY
    breaches = [crossed(t, "first_response", when=START - 5 * DAY, customer="a") for t in "12"]
    completions = [
        done("3", "resolution", 60, True, when=START - 3 * DAY, customer="b"),
        done("4", "resolution", 60, False, when=START - 10 * DAY, customer="c"),
        done("5", "resolution", 60, True, when=START - 2 * DAY, customer="d"),
        done("6", "resolution", 60, True, when=START - 40 * DAY, customer="e"),  # before
        done("7", "resolution", 60, False, when=START + DAY, customer="f"),  # in the period
        done("8", "resolution", 60, False, when=START - DAY),  # nobody's
    ]
    rate = churn_rate(completions, breaches, ["a", "c", "d", "e", "f", "g", "a"], rules, START, end)
    # Known at the start: a, b, c, d (e is older than the window, f newer). At risk then: a
    # (2 breaches) and c (0% compliance); both left. Of b and d, d left. e, f, g were not known.
    assert (rate.customers, rate.lost, rate.rate) == (4, 3, 0.75)
    assert (rate.at_risk, rate.at_risk_lost, rate.at_risk_rate) == (2, 2, 1.0)
    assert (rate.others, rate.others_lost, rate.others_rate) == (2, 1, 0.5)
    assert rate.unknown_lost == 3
    report = replace(build(completions, breaches, ("queue",), START, end), churn_rate=rate)
    text = render_table(report)
    assert "churn rate: 3 of 4 (75.0%) customers lost" in text
    assert "  at risk at the start: 2 of 2 (100.0%)" in text
    assert "  the others: 1 of 2 (50.0%)" in text
    assert "  3 churned customers without an outcome in that window, not counted" in text
    assert json.loads(render_json(report))["churn_rate"] == {
        "from": START.isoformat(),
        "to": end.isoformat(),
        "customers": 4,
        "lost": 3,
        "rate": 0.75,
        "at_risk": {"customers": 2, "lost": 2, "rate": 1.0},
        "others": {"customers": 2, "lost": 1, "rate": 0.5},
        "unknown_lost": 3,
    }
    assert "<h2>Churn rate</h2>" in render_html(report)
    # Nobody known at the start: no rate rather than a division by zero.
    empty = churn_rate([], [], ["a"], rules, START, end)
    assert (empty.rate, empty.at_risk_rate, empty.others_rate, empty.unknown_lost) == (
        None,
        None,
        None,
        1,
    )
    assert json.loads(render_json(replace(report, churn_rate=None)))["churn_rate"] is None

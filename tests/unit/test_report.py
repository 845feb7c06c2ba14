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
    at_risk_counts,
    build,
    churn_rate,
    churn_risk,
    groupings,
    percentile,
    period,
    render_csv,
    render_html,
    render_json,
    render_table,
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
    report = build(rows, [crossed("2", "x", customer=MARKUP)], ("customer",), START, END)
    report = replace(
        report,
        at_risk=(AtRisk("customer", MARKUP, (RiskReason("breaches", MARKUP, ("2",)),)),),
        churn_start=START,
    )
    page = render_html(report)
    assert "<script" not in page and "onmouseover='" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "&amp;amp;" in page  # escaped once more, not taken for an entity
    assert page.count("<svg") == 1 and page.count("<rect") == 2  # a bar per group
    assert "<style>" in page and "src=" not in page and "href=" not in page


def test_csv_round_trips_quotes_commas_and_newlines() -> None:
    rows = [done("1", "first_response", 60, True, organization=AWKWARD)]
    report = build(rows, [], ("organization", "clock"), START, END)
    text = render_csv(report)
    assert "\r\n" in text  # RFC 4180 line ends
    header, line = list(csv.reader(io.StringIO(text, newline="")))
    assert header[:3] == ["organization", "clock", "completions"]
    assert line[:5] == [AWKWARD, "first_response", "1", "1", "0"]
    assert float(line[5]) == 1.0


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

"""The SQL source's row helpers: what a row becomes before the engine judges it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sla_monitor.sources.sql.source import SUBJECT_LIMIT, _subject, _timestamp_problem


def test_a_subject_is_cut_to_the_limit():
    assert SUBJECT_LIMIT == 200
    assert _subject("x" * 10_000_000) == "x" * 200
    assert _subject("Printer on fire") == "Printer on fire"
    assert _subject(None) == ""


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (datetime.max, "infinite_timestamp"),  # PostgreSQL 'infinity' through asyncpg
        (datetime.min, "infinite_timestamp"),  # '-infinity'
        (datetime.max.replace(tzinfo=UTC), "infinite_timestamp"),
        (datetime(2026, 3, 2, 9), "naive_timestamp"),
        (None, "null_timestamp"),
        ("2026-03-02", "bad_timestamp"),
    ],
)
def test_timestamp_problems_name_their_reason(value, reason):
    problem = _timestamp_problem(value, "created_at")
    assert problem is not None and problem[0] == reason


def test_a_good_timestamp_has_no_problem():
    assert _timestamp_problem(datetime(2026, 3, 2, 9, tzinfo=UTC), "created_at") is None


def test_events_are_sorted_by_time_keeping_the_query_order_for_ties():
    from datetime import timedelta

    from sla_monitor.engine import EventKind, TicketEvent
    from sla_monitor.sources.sql.source import _in_time_order

    t0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
    reply = TicketEvent(t0 + timedelta(minutes=30), EventKind.PUBLIC_REPLY)
    reopen = TicketEvent(t0 + timedelta(minutes=10), EventKind.STATUS_CHANGE, "open")
    hold = TicketEvent(t0 + timedelta(minutes=5), EventKind.STATUS_CHANGE, "pending")
    note = TicketEvent(t0 + timedelta(minutes=10), EventKind.INTERNAL_NOTE)
    ordered, first_previous = _in_time_order(
        [(reply, None), (reopen, "pending"), (note, None), (hold, "new")]
    )
    assert ordered == (hold, reopen, note, reply)
    # The status at creation is the previous value of the earliest change, not the first row's.
    assert first_previous == {EventKind.STATUS_CHANGE: "new"}

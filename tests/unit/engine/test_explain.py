"""explain_ticket: the evaluation taken apart, adding up to what was judged."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema

from sla_monitor.engine import (
    Clock,
    ClockState,
    EventKind,
    Policy,
    PolicyRule,
    PolicySet,
    StatusCategory,
    Ticket,
    TicketEvent,
    evaluate_ticket,
)
from sla_monitor.engine.business_calendar import BusinessCalendar, parse_hours
from sla_monitor.engine.explain import (
    OFF_HOURS_SHOWN,
    OffHours,
    explain_ticket,
    explanation_json,
    explanation_text,
    so_far,
)
from sla_monitor.engine.ledger import derive_ledger
from sla_monitor.http import openapi_document

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
HOUR = 3600.0
OFFICE = BusinessCalendar("office", "UTC", {d: [parse_hours("09:00-17:00")] for d in range(5)})
GOLD = Policy(
    name="gold",
    first_response_seconds=2 * HOUR,
    resolution_seconds=10 * HOUR,
    update_interval_seconds=None,
    calendar=OFFICE,
)
POLICIES = PolicySet(rules=(PolicyRule(GOLD, match={"plan": frozenset({"gold"})}),))


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def ticket(*events: tuple[float, EventKind, str | None], **fields: Any) -> Ticket:
    base = Ticket(
        ticket_id="42",
        created_at=T0,
        queue="support",
        initial_status="new",
        initial_priority="normal",
        subject="Printer on fire",
        events=tuple(TicketEvent(at(h), kind, value) for h, kind, value in events),
        attributes={"plan": "gold"},
    )
    return replace(base, **fields)


STATUS = EventKind.STATUS_CHANGE


def test_policy_calendar_and_why_it_matched() -> None:
    explained = explain_ticket(ticket(), POLICIES, at(1))
    assert explained.policy == "gold"
    assert explained.matched == {"attributes.plan": "gold"}
    assert explained.calendar == "office"
    default = explain_ticket(ticket(attributes={}), POLICIES, at(1))
    assert default.policy == "default" and default.matched is None
    assert "no rule matched" in explanation_text(default)


def test_a_pause_is_shown_as_not_counted_and_the_counted_time_is_the_elapsed_time() -> None:
    # Open 09:00-10:00, pending 10:00-12:00, open again from 12:00; judged at 13:00.
    t = ticket((1, STATUS, "pending"), (3, STATUS, "open"))
    explained = explain_ticket(t, POLICIES, at(4))
    evaluation = evaluate_ticket(t, POLICIES, at(4))
    first = next(c for c in explained.clocks if c.clock is Clock.FIRST_RESPONSE)
    spans = [(s.start, s.end, s.counted, s.status) for s in first.spans]
    assert spans == [
        (at(0), at(1), True, "new"),
        (at(1), at(3), False, "pending"),
        (at(3), at(4), True, "open"),
    ]
    assert first.spans[1].reason == "paused by status 'pending'"
    assert sum(s.business_seconds for s in first.spans) == first.elapsed_business_seconds
    assert first.elapsed_business_seconds == 2 * HOUR
    assert first.wall_seconds == 4 * HOUR
    status = evaluation.clocks[Clock.FIRST_RESPONSE]
    assert first.state is status.state is ClockState.BREACHED
    assert first.breached_at == status.breached_at == at(4)
    assert "breached" in first.derivation


def test_business_time_versus_wall_time_outside_hours() -> None:
    # Created Monday 16:00, judged Tuesday 10:00: 1 h Monday + 1 h Tuesday of office time.
    t = ticket(created_at=at(7))
    explained = explain_ticket(t, POLICIES, at(25))
    resolution = next(c for c in explained.clocks if c.clock is Clock.RESOLUTION)
    assert resolution.elapsed_business_seconds == 2 * HOUR
    assert resolution.wall_seconds == 18 * HOUR
    assert resolution.state is ClockState.OK
    # 8 h left of office time from Tuesday 10:00: Tuesday 17:00 is 7 h, Wednesday 10:00.
    assert resolution.deadline == datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
    assert "8h 00m of office time ends at 2026-03-04T10:00:00+00:00" in resolution.derivation
    text = explanation_text(explained)
    assert "16h 00m outside business hours" in text


def test_a_resolved_ticket_is_explained_with_its_resolution() -> None:
    t = ticket((0.5, EventKind.PUBLIC_REPLY, None), (2, STATUS, "resolved"))
    explained = explain_ticket(t, POLICIES, at(5))
    assert explained.category is StatusCategory.RESOLVED
    resolution = next(c for c in explained.clocks if c.clock is Clock.RESOLUTION)
    assert resolution.state is ClockState.MET
    assert resolution.stopped_at == at(2)
    assert [s.counted for s in resolution.spans] == [True]
    assert resolution.spans[-1].end == at(2)
    first = next(c for c in explained.clocks if c.clock is Clock.FIRST_RESPONSE)
    assert first.stopped_at == at(0.5) and first.state is ClockState.MET


def test_json_is_plain_data_and_can_hide_the_subject() -> None:
    explained = explain_ticket(ticket((1, STATUS, "pending")), POLICIES, at(2))
    data = explanation_json(explained)
    assert json.loads(json.dumps(data)) == data
    assert data["subject"] == "Printer on fire"
    assert data["clocks"][0]["spans"][1]["reason"] == "paused by status 'pending'"
    assert "subject" not in explanation_json(explained, show_subject=False)


def test_the_ledger_so_far_in_text_and_json() -> None:
    history = ticket((1, STATUS, "pending"), (2.5, STATUS, "open"))
    explained = explain_ticket(history, POLICIES, at(2))
    ledger = list(derive_ledger(history, POLICIES, at(3)))  # recorded later than explained
    shown = so_far(ledger, explained)
    assert shown and all(entry.at <= at(2) for entry in shown) and len(shown) < len(ledger)
    data = explanation_json(explained, ledger=shown)
    assert json.loads(json.dumps(data)) == data
    assert data["ledger"][0] == {
        "at": T0.isoformat(),
        "clock": "first_response",
        "window_key": "",
        "kind": "started",
        "policy": "gold",
        "previous_policy": None,
        "calendar": "office",
        "priority": "normal",
        "elapsed_seconds": 0.0,
    }
    text = explanation_text(explained, shown)
    assert "Ledger (as recorded):" in text
    assert f"  {at(1).isoformat()}  first_response: paused, 1h 00m counted" in text
    assert explanation_json(explained)["ledger"] is None
    assert "Ledger: not available" in explanation_text(explained)
    assert "Ledger: nothing recorded yet" in explanation_text(explained, [])


def clock_of(explained: Any, clock: Clock) -> Any:
    return next(c for c in explained.clocks if c.clock is clock)


def json_spans(explained: Any, clock: Clock) -> list[dict[str, Any]]:
    data = explanation_json(explained)
    assert json.loads(json.dumps(data)) == data
    spans: list[dict[str, Any]] = next(
        c["spans"] for c in data["clocks"] if c["clock"] == clock.value
    )
    return spans


def test_a_weekend_is_listed_as_not_counted_outside_business_hours() -> None:
    # Opened Friday 2026-03-06 16:00, judged Monday 12:00: first response (2 h of office
    # time) counts Friday 16:00-17:00 and Monday 09:00-10:00, so it breached Monday 10:00.
    friday = datetime(2026, 3, 6, 16, tzinfo=UTC)
    monday = datetime(2026, 3, 9, 12, tzinfo=UTC)
    explained = explain_ticket(ticket(created_at=friday), POLICIES, monday)
    first = clock_of(explained, Clock.FIRST_RESPONSE)
    assert first.breached_at == datetime(2026, 3, 9, 10, tzinfo=UTC)
    [span] = first.spans
    weekend = OffHours(
        datetime(2026, 3, 6, 17, tzinfo=UTC),
        datetime(2026, 3, 9, 9, tzinfo=UTC),
        (7 + 24 + 24 + 9) * HOUR,  # Friday 17:00 to midnight, Saturday, Sunday, Monday to 09:00
    )
    assert span.outside_business_hours == (weekend,)
    assert span.outside_business_hours_more == 0
    assert span.business_seconds == 4 * HOUR  # Friday 16-17, Monday 09-12
    assert span.business_seconds + weekend.seconds == span.wall_seconds == 68 * HOUR

    lines = explanation_text(explained).splitlines()
    line = (
        "      not counted: outside business hours Fri 2026-03-06 17:00 UTC -> "
        "Mon 2026-03-09 09:00 UTC (2d 16h 00m)"
    )
    assert lines.count(line) == 2  # first response and resolution
    at_line = lines.index(line)
    assert lines[at_line - 1].startswith(f"    counted     {friday.isoformat()} .. ")
    assert lines[at_line - 1].endswith("(2d 16h 00m outside business hours)")
    assert sum("outside business hours Fri" in text for text in lines) == 2

    data = explanation_json(explained)
    assert json.loads(json.dumps(data)) == data
    for clock in data["clocks"]:
        [shown] = clock["spans"]
        assert shown["outside_business_hours"] == [
            {
                "start": "2026-03-06T17:00:00+00:00",
                "end": "2026-03-09T09:00:00+00:00",
                "seconds": 230400.0,
            }
        ]
        assert shown["outside_business_hours_more"] == 0
        assert shown["outside_business_hours_more_seconds"] == 0


def test_stretches_outside_business_hours_are_shown_in_the_calendar_zone() -> None:
    berlin = BusinessCalendar(
        "berlin", "Europe/Berlin", {d: [parse_hours("09:00-17:00")] for d in range(5)}
    )
    policies = PolicySet(rules=(PolicyRule(replace(GOLD, calendar=berlin), match={}),))
    # Friday 2026-03-06 16:00 CET (15:00 UTC) to Monday 11:00 CET.
    t = ticket(created_at=datetime(2026, 3, 6, 15, tzinfo=UTC))
    explained = explain_ticket(t, policies, datetime(2026, 3, 9, 10, tzinfo=UTC))
    [span] = clock_of(explained, Clock.RESOLUTION).spans
    [weekend] = span.outside_business_hours
    assert weekend.start == datetime(2026, 3, 6, 16, tzinfo=UTC)
    assert weekend.start.tzinfo is berlin.zone and weekend.seconds == 64 * HOUR
    assert "outside business hours Fri 2026-03-06 17:00 CET -> Mon 2026-03-09 09:00 CET" in (
        explanation_text(explained)
    )
    [shown] = json_spans(explained, Clock.RESOLUTION)
    assert shown["outside_business_hours"][0]["start"] == "2026-03-06T17:00:00+01:00"


def test_a_long_span_lists_a_bounded_number_of_stretches_with_exact_totals() -> None:
    # 90 days from Monday 09:00 on office hours: 12 weeks of 5 stretches outside hours (four
    # nights, one weekend), then Monday to Thursday nights and Friday 17:00 to Sunday 09:00.
    explained = explain_ticket(ticket(), POLICIES, T0 + timedelta(days=90))
    resolution = clock_of(explained, Clock.RESOLUTION)
    [span] = resolution.spans
    assert OFF_HOURS_SHOWN == 20
    assert len(span.outside_business_hours) == 20
    assert span.outside_business_hours_more == 65 - 20
    # Listed: the first 4 weeks, 4 * (4 * 16 h + 64 h) = 512 h; in all 2160 h of wall time,
    # 12 * 40 h + 5 * 8 h = 520 h counted, 1640 h not: 1128 h for the rest.
    assert sum(off.seconds for off in span.outside_business_hours) == 512 * HOUR
    assert span.outside_business_hours_more_seconds == 1128 * HOUR
    assert span.business_seconds == resolution.elapsed_business_seconds == 520 * HOUR
    assert span.wall_seconds == 2160 * HOUR
    assert span.outside_business_hours[0] == OffHours(at(8), at(24), 16 * HOUR)
    assert span.outside_business_hours[4] == OffHours(at(4 * 24 + 8), at(7 * 24), 64 * HOUR)
    starts = [off.start for off in span.outside_business_hours]
    assert starts == sorted(starts)

    text = explanation_text(explained)
    assert text.count("      not counted: outside business hours") == 2 * 20
    assert text.count("      ... and 45 more, 47d 0h 00m in all") == 2
    shown = json_spans(explained, Clock.RESOLUTION)[0]
    assert len(shown["outside_business_hours"]) == 20
    assert shown["outside_business_hours_more"] == 45
    assert shown["outside_business_hours_more_seconds"] == 1128 * HOUR


def test_a_24x7_calendar_lists_no_stretch_outside_business_hours() -> None:
    explained = explain_ticket(ticket(attributes={}), POLICIES, at(80))
    assert explained.calendar == "24x7"
    for clock in explained.clocks:
        [span] = clock.spans
        assert span.outside_business_hours == () and span.outside_business_hours_more == 0
        assert span.business_seconds == span.wall_seconds == 80 * HOUR
    assert "outside business hours" not in explanation_text(explained)
    for clock in explanation_json(explained)["clocks"]:
        assert clock["spans"][0]["outside_business_hours"] == []
        assert clock["spans"][0]["outside_business_hours_more"] == 0


def test_a_resolved_then_reopened_ticket_shows_its_resolved_stretch() -> None:
    t = ticket((1, STATUS, "resolved"), (3, STATUS, "open"))
    explained = explain_ticket(t, POLICIES, at(4))
    resolution = clock_of(explained, Clock.RESOLUTION)
    assert [(s.start, s.end, s.counted) for s in resolution.spans] == [
        (at(0), at(1), True),
        (at(1), at(3), False),
        (at(3), at(4), True),
    ]
    text = explanation_text(explained)
    assert (
        f"    not counted {at(1).isoformat()} .. {at(3).isoformat()}: resolved (status 'resolved')"
    ) in text
    # A stretch not counted lists nothing outside business hours.
    data = json_spans(explained, Clock.RESOLUTION)
    assert "outside_business_hours" not in data[1] and data[0]["outside_business_hours"] == []


def test_the_off_hours_fields_are_valid_against_the_openapi_document() -> None:
    document = openapi_document()
    validator = jsonschema.Draft202012Validator(
        {**document, "$ref": "#/components/schemas/Explanation"}
    )
    for now in (datetime(2026, 3, 9, 12, tzinfo=UTC), T0 + timedelta(days=90)):
        explained = explain_ticket(ticket(created_at=min(now, at(103))), POLICIES, now)
        validator.validate(explanation_json(explained, ledger=[]))
    span = openapi_document()["components"]["schemas"]["Span"]["properties"]
    assert span["outside_business_hours"]["maxItems"] == OFF_HOURS_SHOWN

"""explain_ticket: the evaluation taken apart, adding up to what was judged."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

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
    explain_ticket,
    explanation_json,
    explanation_text,
    so_far,
)
from sla_monitor.engine.ledger import derive_ledger

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

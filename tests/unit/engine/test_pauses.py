"""Pauses per clock: a policy's ``pause`` names the statuses that pause one clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sla_monitor.engine import (
    Clock,
    ClockState,
    EventKind,
    Policy,
    PolicySet,
    Ticket,
    TicketEvent,
    evaluate_ticket,
)
from sla_monitor.engine.owed_updates import owed_update

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
STATUS = EventKind.STATUS_CHANGE


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def ticket(*changes: tuple[float, str]) -> Ticket:
    return Ticket(
        "9",
        T0,
        "support",
        "new",
        "normal",
        events=tuple(TicketEvent(at(m), STATUS, value) for m, value in changes),
    )


def policies(**pause: list[str]) -> PolicySet:
    return PolicySet(
        default=Policy(pause={Clock(name): frozenset(statuses) for name, statuses in pause.items()})
    )


PENDING = ticket((60, "pending"))


def test_by_default_the_paused_statuses_pause_every_clock():
    evaluation = evaluate_ticket(PENDING, PolicySet(), at(600))
    for clock in (Clock.FIRST_RESPONSE, Clock.RESOLUTION, Clock.UPDATE):
        assert evaluation.clocks[clock].elapsed_seconds == 3600
        assert not evaluation.clocks[clock].running


def test_an_empty_list_never_pauses_that_clock_and_only_that_one():
    evaluation = evaluate_ticket(PENDING, policies(update=[]), at(600))
    update = evaluation.clocks[Clock.UPDATE]
    assert update.running and update.state is ClockState.BREACHED
    assert update.elapsed_seconds == 600 * 60
    assert evaluation.clocks[Clock.RESOLUTION].state is ClockState.PAUSED
    assert evaluation.clocks[Clock.RESOLUTION].elapsed_seconds == 3600


def test_first_response_can_keep_running_on_hold():
    evaluation = evaluate_ticket(PENDING, policies(first_response=[]), at(90))
    assert evaluation.clocks[Clock.FIRST_RESPONSE].state is ClockState.BREACHED
    assert evaluation.clocks[Clock.FIRST_RESPONSE].breached_at == at(60)
    assert evaluation.clocks[Clock.UPDATE].state is ClockState.PAUSED


def test_a_subset_of_the_paused_statuses_pauses_only_in_those():
    t = ticket((60, "pending"), (120, "waiting"))
    status = evaluate_ticket(t, policies(resolution=["pending"]), at(180)).clocks[Clock.RESOLUTION]
    assert status.elapsed_seconds == 120 * 60  # 0-60 open, 60-120 pending, 120-180 waiting runs
    assert status.running


def test_an_open_status_listed_pauses_only_that_clock():
    t = ticket((60, "open"))  # "open" is in the open category
    evaluation = evaluate_ticket(t, policies(resolution=["open"]), at(180))
    assert evaluation.clocks[Clock.RESOLUTION].elapsed_seconds == 3600
    assert evaluation.clocks[Clock.RESOLUTION].state is ClockState.PAUSED
    assert evaluation.clocks[Clock.FIRST_RESPONSE].running  # the ticket is open for it


def test_the_default_spelt_out_is_the_default():
    t = ticket((60, "pending"), (120, "open"), (200, "waiting"))
    spelt = policies(resolution=["pending", "waiting"], update=["waiting", "pending"])
    for minutes in (30, 90, 150, 300):
        assert evaluate_ticket(t, spelt, at(minutes)).clocks == (
            evaluate_ticket(t, PolicySet(), at(minutes)).clocks
        )


def test_a_paused_ticket_is_owed_an_update_when_its_update_clock_runs():
    paused_ticket = ticket((10, "pending"))
    unpaused = evaluate_ticket(paused_ticket, policies(update=[]), at(300))
    assert owed_update(unpaused, T0, at(300), 0) is not None
    # By default a pause stops the update clock: nothing is owed.
    assert owed_update(evaluate_ticket(paused_ticket, PolicySet(), at(300)), T0, at(300), 0) is None

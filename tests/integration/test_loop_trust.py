"""The loop never dies quietly or lies: supervision, one bad ticket, quiet hours,
tickets that leave the open set, and a reload that admits tickets left out before."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import asyncpg
import pytest
import structlog

from sla_monitor import cli
from sla_monitor.app import TaskCrashed, serve
from sla_monitor.config import Settings, policy_set
from sla_monitor.daemon import Daemon
from sla_monitor.daemon_options import Timing
from sla_monitor.engine import Policy, PolicyRule, PolicySet
from sla_monitor.sources.sql import REFERENCE_SCHEMA
from tests.integration.helpdesk import FakeClock, Helpdesk, make_daemon, open_gauge, sample
from tests.integration.peers import free_port
from tests.integration.test_updates import Harness, update_settings

pytestmark = pytest.mark.integration


class BrokenCalendar:
    """A calendar with a bug: every question about it raises."""

    name = "broken"

    def business_seconds(self, start: datetime, end: datetime) -> float:
        raise ZeroDivisionError("calendar bug")

    def add_business_seconds(self, start: datetime, seconds: float) -> datetime:
        raise ZeroDivisionError("calendar bug")

    def business_microseconds(self, start: datetime, end: datetime) -> int:
        raise ZeroDivisionError("calendar bug")

    def add_business_microseconds(self, start: datetime, microseconds: int) -> datetime:
        raise ZeroDivisionError("calendar bug")


def with_broken_queue(policies: PolicySet) -> PolicySet:
    broken = PolicyRule(Policy(name="broken", calendar=BrokenCalendar()), queues=frozenset({"x"}))
    return PolicySet(
        rules=(broken, *policies.rules),
        default=policies.default,
        statuses=policies.statuses,
        priorities=policies.priorities,
    )


def escalating() -> Settings:
    return Settings(
        escalation={
            "enabled": True,
            "channels": {"alertmanager": {"url": "http://127.0.0.1:9"}},
            "backlog": "page",  # these tests page tickets already late at the first start
        }
    )


async def active_escalations(helpdesk: Helpdesk, ticket: str) -> int:
    count: int = await helpdesk.conn.fetchval(
        "SELECT count(*) FROM sla_monitor.escalations WHERE ticket_id = $1 AND resolved_at IS NULL",
        ticket,
    )
    return count


async def resolves_queued(helpdesk: Helpdesk, ticket: str) -> int:
    count: int = await helpdesk.conn.fetchval(
        "SELECT count(*) FROM sla_monitor.outbox WHERE action = 'resolve' "
        "AND payload->'labels'->>'ticket_id' = $1",
        ticket,
    )
    return count


async def test_a_ticket_the_engine_fails_on_is_a_bad_row_not_a_dead_loop(pool, helpdesk) -> None:
    good = await helpdesk.ticket(created=0)
    broken = await helpdesk.ticket(created=0, queue="x")
    daemon = make_daemon(pool, FakeClock(10))
    daemon.tracker.policies = with_broken_queue(daemon.tracker.policies)
    await daemon.store.migrate()
    with structlog.testing.capture_logs() as logs:
        await daemon.poll_once()
    assert good in daemon.tracker and broken not in daemon.tracker
    assert sample(daemon, "sla_monitor_bad_rows_total", reason="evaluation_failed") == 1
    [failure] = [line for line in logs if line["event"] == "evaluation_failed"]
    assert failure["ticket_id"] == broken and isinstance(failure["exc_info"], ZeroDivisionError)
    assert daemon.ready


async def test_a_ticket_failing_at_its_timer_leaves_the_others_running(pool, helpdesk) -> None:
    first = await helpdesk.ticket(created=0, queue="x")
    second = await helpdesk.ticket(created=0)
    clock = FakeClock(10)
    daemon = make_daemon(pool, clock)
    await daemon.store.migrate()
    await daemon.poll_once()
    # The bug shows only when the timers fire: the first ticket's judging now raises.
    daemon.tracker.policies = with_broken_queue(daemon.tracker.policies)
    clock.set(61)
    await daemon.refresh_due()
    assert first not in daemon.tracker
    assert sample(daemon, "sla_monitor_bad_rows_total", reason="evaluation_failed") == 1
    assert open_gauge(daemon, "first_response", "breached") == 1
    assert second in daemon.tracker


async def test_a_crashed_poller_is_loud_and_ends_the_service(database_dsn, monkeypatch) -> None:
    conn = await asyncpg.connect(database_dsn)
    await conn.execute(REFERENCE_SCHEMA)
    await conn.close()
    polls = 0
    poll_once = Daemon.poll_once

    async def poll_then_crash(self: Daemon) -> None:
        nonlocal polls
        polls += 1
        if polls > 1:
            raise RuntimeError("a bug in the loop")
        await poll_once(self)

    monkeypatch.setattr(Daemon, "poll_once", poll_then_crash)
    settings = Settings(
        database={"dsn": database_dsn},
        daemon={"listen_port": free_port(), "poll_interval": "0.05s"},
    )
    with structlog.testing.capture_logs() as logs, pytest.raises(TaskCrashed, match="poller"):
        await asyncio.wait_for(serve(settings, reload=False), timeout=30)
    [crash] = [line for line in logs if line["event"] == "task_crashed"]
    assert crash["task"] == "poller" and isinstance(crash["exc_info"], RuntimeError)
    assert "a bug in the loop" in crash["error"]


def test_a_crashed_task_makes_run_exit_non_zero(monkeypatch, capsys) -> None:
    async def crashing(*args: Any, **kwargs: Any) -> None:
        raise TaskCrashed("poller")

    monkeypatch.setattr("sla_monitor.app.serve", crashing)
    monkeypatch.setattr(cli, "configure_logging", lambda level: None)  # keep the tests' own
    monkeypatch.delenv("SLA_MONITOR_CONFIG", raising=False)
    assert cli.main(["run"]) == cli.EX_SOFTWARE
    assert "poller crashed" in capsys.readouterr().err


async def test_quiet_hours_skip_a_ticket_until_they_end(pool, helpdesk) -> None:
    # T0 is 09:00 UTC; updates are owed from 13:00; 23:00 is inside the quiet hours.
    tickets = [await helpdesk.ticket(created=0) for _ in range(20)]
    h = Harness(pool, update_settings(quiet_hours="22:00-08:00"), 14 * 60)
    await h.daemon.store.migrate()
    assert await h.cycle(14 * 60) == 0
    judged = 0
    evaluation = h.daemon.tracker.evaluation

    def counting(ticket_id: str) -> Any:
        nonlocal judged
        judged += 1
        return evaluation(ticket_id)

    h.daemon.tracker.evaluation = counting  # type: ignore[method-assign]
    for minutes in range(14 * 60 + 1, 14 * 60 + 60, 5):
        h.clock.set(minutes)
        await h.daemon.refresh_due()
    assert judged == 0  # nothing judged again all night
    assert await h.cycle(23 * 60 + 1) == len(tickets)  # 08:01: every update goes out
    await h.sender.close()


async def test_a_deleted_ticket_leaves_the_gauges_and_its_escalations_resolve(
    pool, helpdesk
) -> None:
    ticket = await helpdesk.ticket(created=0)
    kept = await helpdesk.ticket(created=0)
    daemon = make_daemon(pool, FakeClock(70), escalating())
    daemon.timing = Timing(reconcile_interval=0)
    await daemon.store.migrate()
    await daemon.poll_once()
    assert await active_escalations(helpdesk, ticket) == 2  # team and on-call
    await helpdesk.conn.execute("DELETE FROM helpdesk.tickets WHERE id = $1", int(ticket))
    with structlog.testing.capture_logs() as logs:
        await daemon.poll_once()
    assert ticket not in daemon.tracker and kept in daemon.tracker
    assert sample(daemon, "sla_monitor_tracked_tickets") == 1
    assert sample(daemon, "sla_monitor_tickets_vanished_total") == 1
    assert await active_escalations(helpdesk, ticket) == 0
    assert await resolves_queued(helpdesk, ticket) == 2
    assert await active_escalations(helpdesk, kept) == 2
    assert [line["left_open_set"] for line in logs if line["event"] == "reconciled"] == [1]


async def test_escalations_of_a_ticket_deleted_while_stopped_resolve_at_start(
    pool, helpdesk
) -> None:
    ticket = await helpdesk.ticket(created=0)
    first = make_daemon(pool, FakeClock(70), escalating())
    await first.store.migrate()
    await first.poll_once()
    assert await active_escalations(helpdesk, ticket) == 2
    await helpdesk.conn.execute("DELETE FROM helpdesk.tickets WHERE id = $1", int(ticket))
    second = make_daemon(pool, FakeClock(75), escalating())
    await second.poll_once()
    assert await active_escalations(helpdesk, ticket) == 0
    assert await resolves_queued(helpdesk, ticket) == 2


async def test_a_ticket_turned_bad_row_resolves_its_escalations(pool, helpdesk) -> None:
    ticket = await helpdesk.ticket(created=0)
    daemon = make_daemon(pool, FakeClock(70), escalating())
    await daemon.store.migrate()
    await daemon.poll_once()
    assert await active_escalations(helpdesk, ticket) == 2
    await helpdesk.event(ticket, 71, "priority_change", "p0", "normal")
    daemon.clock.set(72)  # type: ignore[attr-defined]
    await daemon.poll_once()
    assert sample(daemon, "sla_monitor_bad_rows_total", reason="unknown_priority") == 1
    assert ticket not in daemon.tracker
    assert await active_escalations(helpdesk, ticket) == 0


async def test_a_reload_admits_tickets_left_out_as_bad_rows(pool, helpdesk) -> None:
    ticket = await helpdesk.ticket(created=0, priority="p0")
    daemon = make_daemon(pool, FakeClock(10))
    await daemon.store.migrate()
    await daemon.poll_once()
    assert ticket not in daemon.tracker
    settings = Settings(priorities=["urgent", "high", "normal", "low", "p0"])
    daemon.reload(policy_set(settings))
    await daemon.poll_once()
    assert ticket in daemon.tracker


async def triggers(helpdesk: Helpdesk, ticket: str, level: str) -> list[str]:
    rows = await helpdesk.conn.fetch(
        "SELECT dedup_key FROM sla_monitor.outbox WHERE action = 'trigger' "
        "AND payload->'labels'->>'ticket_id' = $1 AND payload->'labels'->>'level' = $2 "
        "ORDER BY id",
        ticket,
        level,
    )
    return [row["dedup_key"] for row in rows]


async def test_an_alert_resolved_by_a_pause_fires_again_when_the_clock_resumes(
    pool, helpdesk
) -> None:
    ticket = await helpdesk.ticket(created=0)
    clock = FakeClock(46)  # at risk since 45
    daemon = make_daemon(pool, clock, escalating())
    await daemon.store.migrate()
    await daemon.poll_once()
    assert len(await triggers(helpdesk, ticket, "team")) == 1
    await helpdesk.set_status(ticket, 50, "pending")
    clock.set(51)
    await daemon.poll_once()
    assert await active_escalations(helpdesk, ticket) == 0  # resolved while waiting
    await helpdesk.set_status(ticket, 55, "open")
    clock.set(56)
    await daemon.poll_once()
    keys = await triggers(helpdesk, ticket, "team")
    assert len(keys) == 2 and keys[0] != keys[1]  # a second episode, paged again
    assert await active_escalations(helpdesk, ticket) == 1


async def test_remind_mode_reminds_for_every_expired_update_window(pool, helpdesk) -> None:
    ticket = await helpdesk.ticket(created=0)
    await helpdesk.reply(ticket, 10)
    settings = Settings(
        updates={"enabled": True, "mode": "remind", "remind_channels": ["alertmanager"]},
        escalation={"channels": {"alertmanager": {"url": "http://127.0.0.1:9"}}, "backlog": "page"},
    )
    clock = FakeClock(10 + 241)  # the window opened by the reply expired at 250
    daemon = make_daemon(pool, clock, settings)
    await daemon.store.migrate()
    await daemon.poll_once()
    assert len(await triggers(helpdesk, ticket, "update_owed")) == 1
    await helpdesk.reply(ticket, 260)
    clock.set(260 + 241)
    await daemon.poll_once()
    keys = await triggers(helpdesk, ticket, "update_owed")
    assert len(keys) == 2 and keys[0] != keys[1]

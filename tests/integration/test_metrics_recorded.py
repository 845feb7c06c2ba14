"""Metrics of what the daemon records, against a real PostgreSQL: queue labels folded into
"other" beyond max_queues, and priorities following a reload."""

from __future__ import annotations

import asyncpg

from sla_monitor.app import build_daemon
from sla_monitor.config import Settings, policy_set
from sla_monitor.metrics import OTHER_QUEUE
from tests.integration.helpdesk import FakeClock, make_daemon, sample
from tests.unit.test_metrics import pairs


async def test_the_built_daemon_caps_queues_at_its_setting(pool: asyncpg.Pool) -> None:
    settings = Settings.model_validate({"daemon": {"max_queues": 3}})
    assert build_daemon(settings, pool, pool).metrics.max_queues == 3


async def test_recorded_outcomes_of_folded_queues_count_as_other(pool, helpdesk) -> None:
    first = await helpdesk.ticket(created=0, queue="support")
    await helpdesk.reply(first, 20)  # met: a completion and a histogram observation
    second = await helpdesk.ticket(created=0, queue="billing")
    await helpdesk.reply(second, 20)
    await helpdesk.ticket(created=-120, queue="sales")  # breached, unanswered
    daemon = make_daemon(pool, FakeClock(50), Settings(daemon={"max_queues": 1}))
    assert daemon.metrics.queue_label("support") == "support"  # the one named queue
    await daemon.store.migrate()
    await daemon.poll_once()

    named = {"queue": "support", "priority": "normal"}
    other = {"queue": OTHER_QUEUE, "priority": "normal"}
    assert sample(daemon, "sla_monitor_breaches_total", clock="first_response", **named) == 0
    assert sample(daemon, "sla_monitor_breaches_total", clock="first_response", **other) == 1
    completed = "sla_monitor_sla_completed_total"
    assert sample(daemon, completed, clock="first_response", outcome="met", **named) == 1
    assert sample(daemon, completed, clock="first_response", outcome="met", **other) == 1
    assert sample(daemon, "sla_monitor_first_response_seconds_count", **named) == 1
    assert sample(daemon, "sla_monitor_first_response_seconds_count", **other) == 1
    assert sample(daemon, "sla_monitor_open_tickets", clock="resolution", state="ok", **other) == 2
    assert sample(daemon, "sla_monitor_queues_folded_total") == 2
    queues = {
        s.labels["queue"]
        for family in daemon.metrics.registry.collect()
        for s in family.samples
        if "queue" in s.labels
    }
    assert queues == {"support", OTHER_QUEUE}


async def test_a_reload_adds_and_removes_priorities_in_the_gauge(pool, helpdesk) -> None:
    await helpdesk.ticket(created=0, priority="low")
    daemon = make_daemon(pool, FakeClock(10))
    await daemon.store.migrate()
    await daemon.poll_once()
    assert pairs(daemon.metrics) == {("low", "support")}

    # SIGHUP with a configuration whose priorities are vip and normal: low is no longer one.
    settings = Settings.model_validate({"priorities": ["vip", "normal"]})
    daemon.reload(policy_set(settings))
    assert pairs(daemon.metrics) == set()  # the low ticket is now a bad row, not a label
    await helpdesk.ticket(created=5, priority="vip")
    await daemon.poll_once()
    assert pairs(daemon.metrics) == {("vip", "support")}
    ok = {"clock": "first_response", "state": "ok", "priority": "vip", "queue": "support"}
    assert sample(daemon, "sla_monitor_open_tickets", **ok) == 1

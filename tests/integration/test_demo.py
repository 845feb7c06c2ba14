"""The demo helpdesk fails some customers again and again: within minutes of demo time the
churn watch finds them at risk (what GET /api/v1/customers/at-risk answers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from sla_monitor.app import churn_rules
from sla_monitor.config import Settings
from sla_monitor.demo import demo_settings
from sla_monitor.sources.sql.demo import CUSTOMERS, NEGLECTED, TicketGenerator
from sla_monitor.store.report import ChurnWatch, ReportStore
from tests.integration.helpdesk import make_daemon

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


async def test_the_demo_shows_customers_at_risk_within_minutes(
    pool: asyncpg.Pool, helpdesk, database_dsn: str, tmp_path: Path
) -> None:
    # The demo's settings. This test runs no outbox to post progress updates: an update clock
    # breaches once per silence here instead of once per interval, so breaches are fewer.
    settings = demo_settings(Settings(), tmp_path)
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    generator = TicketGenerator(database_dsn, clock=clock)
    daemon = make_daemon(pool, clock, settings)
    watch = ChurnWatch(
        ReportStore(pool, "sla_monitor", "helpdesk"),
        churn_rules(settings),
        daemon.metrics,
        settings.churn.interval,
        clock,
    )
    await daemon.store.migrate()
    conn = await asyncpg.connect(database_dsn)
    found: list[tuple[str, str]] = []
    try:
        # The demo's pace: a generator tick a second, a poll every 2 s, a count every 15 s.
        for second in range(1, 7 * 60 + 1):
            clock.now += timedelta(seconds=1)
            await generator.step(conn)
            if second % 2 == 0:
                await daemon.poll_once()
            if second % 15 == 0:
                await watch.count()
                assert watch.latest is not None
                found = [(e["kind"], e["name"]) for e in watch.latest["at_risk"]]
                if {name for _, name in found} >= NEGLECTED:
                    break
        organizations = await conn.fetch(
            "SELECT DISTINCT organization FROM helpdesk.tickets ORDER BY 1"
        )
    finally:
        await conn.close()
    assert second <= 6 * 60, f"after {second} s of demo time, at risk: {found}"
    # Those found are the neglected ones and their organizations, never a customer served well.
    assert {name for kind, name in found if kind == "customer"} == NEGLECTED, watch.latest
    neglected_organizations = {org for who, org in CUSTOMERS if who in NEGLECTED}
    assert {name for kind, name in found if kind == "organization"} <= neglected_organizations
    named = sorted({org for _, org in CUSTOMERS if org is not None})
    assert [r[0] for r in organizations] == [*named, None]

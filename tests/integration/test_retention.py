"""Retention: old rows of the daemon's own tables go, in batches, young ones stay, purged by
the leader alone; a retention age shorter than a target (or than the daily cap's window) is a
configuration error."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from sla_monitor.app import LeaderDuties, build_leadership, build_sender, build_tracker
from sla_monitor.config import ConfigError, Settings, load_settings, policy_set
from sla_monitor.leadership import Role
from sla_monitor.metrics import Metrics
from sla_monitor.retention import Retention
from sla_monitor.schema import RetentionSettings
from sla_monitor.store import StateStore
from sla_monitor.tracker import Tracker
from tests.integration.replicas import wait_for
from tests.integration.test_cli import EX_CONFIG, sla_monitor

pytestmark = pytest.mark.integration
DAY = 86400.0


class CountedRetention(Retention):
    """Retention that remembers each batch's size (the real deletes, counted)."""

    batches: list[tuple[str, int]]

    async def _delete_batch(self, table: str) -> int:
        deleted = await super()._delete_batch(table)
        self.batches.append((table, deleted))
        return deleted


async def fill(conn: asyncpg.Connection, old: int, young: int) -> None:
    """``old`` rows of each table 40 days past their instant (401 for breaches, completions
    and the ledger), ``young`` rows a day past."""
    for n in range(old + young):
        days = (401 if n < old else 1, 40 if n < old else 1)
        await conn.execute(
            "INSERT INTO sla_monitor.breaches VALUES ('hd', $1, 'first_response', 'w', "
            "now() - make_interval(days => $2), 'normal', 'support')",
            str(n),
            days[0],
        )
        await conn.execute(
            "INSERT INTO sla_monitor.completions VALUES ('hd', $1, 'first_response', 'w', "
            "now() - make_interval(days => $2), true, 60, 'normal', 'support')",
            str(n),
            days[0],
        )
        await conn.execute(
            "INSERT INTO sla_monitor.ledger (source, ticket_id, clock, window_key, kind, at,"
            " policy, calendar, priority, elapsed_seconds, queue) VALUES ('hd', $1,"
            " 'first_response', '', 'started', now() - make_interval(days => $2), 'default',"
            " '24x7', 'normal', 0, 'support')",
            str(n),
            days[0],
        )
        await conn.execute(
            "INSERT INTO sla_monitor.customer_updates VALUES ($1, 'hd', $1, now(), 'en', 'b', "
            "now() - make_interval(days => $2))",
            str(n),
            days[1],
        )
        await conn.execute(
            "INSERT INTO sla_monitor.escalations (dedup_key, source, ticket_id, clock, level, "
            "channels, alert, resolved_at) VALUES ($1, 'hd', $1, 'first_response', 'oncall', "
            "'{pagerduty}', '{}', now() - make_interval(days => $2))",
            str(n),
            days[1],
        )
        await conn.execute(
            "INSERT INTO sla_monitor.outbox (dedup_key, action, channel, payload, delivered_at) "
            "VALUES ($1, 'trigger', 'pagerduty', '{}', now() - make_interval(days => $2))",
            str(n),
            days[1],
        )
    # Never purged: an active escalation and an undelivered row, however old.
    await conn.execute(
        "INSERT INTO sla_monitor.escalations (dedup_key, source, ticket_id, clock, level, "
        "channels, alert, triggered_at) VALUES ('active', 'hd', 'a', 'first_response', "
        "'oncall', '{pagerduty}', '{}', now() - interval '900 days')"
    )
    await conn.execute(
        "INSERT INTO sla_monitor.outbox (dedup_key, action, channel, payload, created_at) "
        "VALUES ('pending', 'trigger', 'pagerduty', '{}', now() - interval '900 days')"
    )


async def test_purges_only_old_rows_in_batches_and_counts_them(pool: asyncpg.Pool) -> None:
    await StateStore(pool, "sla_monitor", "hd").migrate()
    async with pool.acquire() as conn:
        await fill(conn, old=7, young=4)
    metrics = Metrics(Tracker(policy_set(Settings())))
    retention = CountedRetention(
        pool, "sla_monitor", RetentionSettings(batch_size=3, pause=0), metrics
    )
    retention.batches = []
    assert await retention.purge() == {
        "outbox": 7,
        "breaches": 7,
        "completions": 7,
        "customer_updates": 7,
        "escalations": 7,
        "ledger": 7,
    }
    # 3 + 3 + 1 rows: three short statements per table, the last one short of a batch.
    assert [n for table, n in retention.batches if table == "breaches"] == [3, 3, 1]
    assert [n for table, n in retention.batches if table == "ledger"] == [3, 3, 1]
    async with pool.acquire() as conn:
        for table, left in (
            ("breaches", 4),
            ("completions", 4),
            ("customer_updates", 4),
            ("escalations", 5),  # and the active one
            ("outbox", 5),  # and the pending one
            ("ledger", 4),
        ):
            assert await conn.fetchval(f"SELECT count(*) FROM sla_monitor.{table}") == left
    for table in ("outbox", "breaches", "completions", "customer_updates", "escalations", "ledger"):
        value = metrics.registry.get_sample_value("sla_monitor_rows_purged_total", {"table": table})
        assert value == 7
    assert set((await retention.purge()).values()) == {0}


async def test_a_digested_row_stays_while_its_digest_waits(pool: asyncpg.Pool) -> None:
    await StateStore(pool, "sla_monitor", "hd").migrate()
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO sla_monitor.outbox (dedup_key, action, channel, payload, delivered_at,"
            " digest_key) VALUES ('folded', 'trigger', 'pagerduty', '{}', "
            "now() - interval '40 days', 'pagerduty/digest/x')"
        )
        await conn.execute(
            "INSERT INTO sla_monitor.outbox (dedup_key, action, channel, payload) "
            "VALUES ('pagerduty/digest/x', 'trigger', 'pagerduty', '{}')"
        )
        metrics = Metrics(Tracker(policy_set(Settings())))
        retention = Retention(pool, "sla_monitor", RetentionSettings(), metrics)
        assert await retention.purge_table("outbox") == 0
        await conn.execute("UPDATE sla_monitor.outbox SET delivered_at = now() WHERE id = 2")
        assert await retention.purge_table("outbox") == 1


class ReplicaInProcess:
    """A replica's leadership (its own lock session: the real advisory lock, on ``clock``)
    and leader duties (the real sender and retention, on the shared pool), wired as
    sla_monitor.app.serve wires them (but for the poller's take-over); its retention counts
    its runs and purges."""

    def __init__(
        self, dsn: str, pool: asyncpg.Pool, clock: Callable[[], float], settings: Settings
    ) -> None:
        tracker, self.metrics = build_tracker(settings)
        self.leadership, key = build_leadership(settings, dsn, None, self.metrics, validate=False)
        self.leadership.clock = clock
        leadership = self.leadership

        async def fence(conn: Any) -> bool:
            return await leadership.fence(conn, key)

        sender = build_sender(
            settings, tracker, self.metrics, pool, None, (leadership.leading, fence)
        )
        self.runs = self.purges = 0
        self.retaining = False
        replica = self

        class Watched(Retention):
            async def run(self) -> None:
                replica.runs += 1
                replica.retaining = True
                try:
                    await super().run()
                finally:
                    replica.retaining = False

            async def purge(self) -> dict[str, int]:
                replica.purges += 1
                return await super().purge()

        retention = Watched(pool, "sla_monitor", settings.retention, self.metrics)
        self.duties = LeaderDuties(sender, None, retention, self.metrics)
        leadership.on_lead = self.duties.lead
        leadership.on_step_down = self.duties.step_down
        self.task = asyncio.create_task(self.duties.run())

    async def close(self) -> None:
        self.duties.stop()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.duties.sender.close()
        if self.leadership.session is not None:
            self.leadership.session.close()


async def aged(conn: asyncpg.Connection, prefix: str, old: int, young: int) -> None:
    """``old`` breaches 401 days and delivered outbox rows 40 days past, ``young`` of each a
    day past, keyed ``<prefix><n>``."""
    for n in range(old + young):
        days = (401, 40) if n < old else (1, 1)
        await conn.execute(
            "INSERT INTO sla_monitor.breaches VALUES ('hd', $1, 'first_response', 'w', "
            "now() - make_interval(days => $2), 'normal', 'support')",
            f"{prefix}{n}",
            days[0],
        )
        await conn.execute(
            "INSERT INTO sla_monitor.outbox (dedup_key, action, channel, payload, delivered_at) "
            "VALUES ($1, 'trigger', 'pagerduty', '{}', now() - make_interval(days => $2))",
            f"{prefix}{n}",
            days[1],
        )


async def rows(conn: asyncpg.Connection, prefix: str) -> tuple[int, int]:
    """Breaches and outbox rows keyed ``<prefix>...`` still there."""
    return (
        await conn.fetchval(
            "SELECT count(*) FROM sla_monitor.breaches WHERE ticket_id LIKE $1", f"{prefix}%"
        ),
        await conn.fetchval(
            "SELECT count(*) FROM sla_monitor.outbox WHERE dedup_key LIKE $1", f"{prefix}%"
        ),
    )


async def test_only_the_leader_purges_and_a_standby_never_does(
    database_dsn: str, pool: asyncpg.Pool
) -> None:
    """Two replicas on one database, retention every 20 ms: while one leads, the other's
    duties run all along and never purge; once the leader loses its lock, its retention
    stops, and the new leader purges what has aged since."""
    await StateStore(pool, "sla_monitor", "hd").migrate()
    async with pool.acquire() as conn:
        await aged(conn, "a", old=7, young=2)
    now = [0.0]
    settings = Settings(retention=RetentionSettings(interval=0.02, batch_size=3, pause=0))
    a = ReplicaInProcess(database_dsn, pool, lambda: now[0], settings)
    b = ReplicaInProcess(database_dsn, pool, lambda: now[0], settings)
    try:
        await a.leadership.step()  # a takes the lock: it leads after a lease (its grace)
        await b.leadership.step()
        assert a.leadership.role is Role.LEADER and b.leadership.role is Role.STANDBY
        now[0] = a.leadership.lease
        await a.leadership.step()
        await b.leadership.step()
        assert a.leadership.leading() and not b.leadership.leading()

        # The leader purges again and again; the standby's duties, running all along on the
        # same interval, never start retention.
        await wait_for(lambda: a.purges >= 5, "five purges by the leader", 10)
        async with pool.acquire() as conn:
            assert await rows(conn, "a") == (2, 2)
        assert b.runs == b.purges == 0
        purged = a.metrics.registry.get_sample_value
        assert purged("sla_monitor_rows_purged_total", {"table": "breaches"}) == 7
        assert purged("sla_monitor_rows_purged_total", {"table": "outbox"}) == 7

        # The leader's lock connection drops: it steps down and its retention stops; the
        # standby takes the lock and, after its grace, purges what has aged meanwhile.
        assert a.leadership.session is not None
        a.leadership.session.close()
        await a.leadership.step()
        assert not a.leadership.leading()
        await wait_for(lambda: not a.retaining, "the former leader's retention stopped", 10)
        by_a = a.purges

        async def b_locks() -> bool:
            await b.leadership.step()
            return b.leadership.role is Role.LEADER

        await wait_for(b_locks, "b taking the lock", 10)
        async with pool.acquire() as conn:
            await aged(conn, "b", old=4, young=1)
        now[0] += b.leadership.lease
        await b.leadership.step()
        assert b.leadership.leading()

        async def b_purged() -> bool:
            async with pool.acquire() as conn:
                return b.runs == 1 and b.purges >= 5 and await rows(conn, "b") == (1, 1)

        await wait_for(b_purged, "five purges by the new leader", 10)
        assert a.purges == by_a and a.runs == 1
    finally:
        await a.close()
        await b.close()


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            '[retention]\nbreaches = "12h"\n',
            "retention.breaches: 0.5d is shorter than policies.default.resolution (1d)",
        ),
        (
            '[policies.default]\nresolution = "60d"\n',
            "retention.delivered_outbox: 30d is shorter than policies.default.resolution",
        ),
        ('[retention]\ncustomer_updates = "1d"\n', "retention.customer_updates"),
        (
            '[retention]\nledger = "12h"\n',
            "retention.ledger: 0.5d is shorter than policies.default.resolution (1d)",
        ),
    ],
)
def test_a_retention_shorter_than_a_target_exits_78(
    tmp_path: Path, toml: str, expected: str
) -> None:
    config = tmp_path / "short.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError, match="retention"):
        load_settings(config)
    result = sla_monitor("--config", str(config), "check-config")
    assert result.returncode == EX_CONFIG
    assert expected in result.stderr


def test_the_defaults_and_long_ages_are_accepted(tmp_path: Path) -> None:
    config = tmp_path / "long.toml"
    config.write_text('[retention]\nbreaches = "730d"\n')
    assert load_settings(config).retention.breaches == 730 * DAY
    assert Settings().retention.delivered_outbox == 30 * DAY
    assert Settings().retention.ledger == 400 * DAY

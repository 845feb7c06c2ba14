"""Retention: old rows of the daemon's own tables go, in batches, young ones stay; a retention
age shorter than a target (or than the daily cap's window) is a configuration error."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from sla_monitor.config import ConfigError, Settings, load_settings, policy_set
from sla_monitor.metrics import Metrics
from sla_monitor.retention import Retention
from sla_monitor.schema import RetentionSettings
from sla_monitor.store import StateStore
from sla_monitor.tracker import Tracker
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

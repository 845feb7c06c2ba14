"""An active/standby pair of real `sla-monitor run` processes on one state database: the
leader SIGKILLed at random instants while tickets breach, its lock connection cut or killed,
replicas whose configurations differ, and a standby that refuses a broken configuration."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from sla_monitor.sources.sql import REFERENCE_SCHEMA
from tests.integration.proxy import OutageProxy
from tests.integration.replicas import (
    Receiver,
    Replica,
    breaching_tickets,
    pending,
    replica_config,
    role_of,
    synced,
    wait_for,
)

pytestmark = pytest.mark.integration
TAKEOVER_LIMIT = 10.0  # seconds, from the leader's death to the standby leading


@pytest.fixture
async def helpdesk_conn(database_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_dsn)
    await conn.execute(REFERENCE_SCHEMA)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def leader_of(replicas: list[Replica]) -> Replica:
    """The one replica that says it leads (waits for exactly one)."""
    found: list[Replica] = []

    async def one() -> bool:
        roles = await asyncio.gather(*(role_of(r) for r in replicas))
        found[:] = [r for r, role in zip(replicas, roles, strict=True) if role == "leader"]
        return len(found) == 1

    await wait_for(one, "exactly one leader", 60)
    return found[0]


async def test_sigkilled_leaders_lose_no_escalation_and_send_none_twice(
    database_dsn: str, helpdesk_conn: asyncpg.Connection, receiver: Receiver, tmp_path: Path
) -> None:
    config = replica_config(tmp_path / "sla-monitor.toml", f"{receiver.url}/webhook")
    replicas = [
        Replica(name, database_dsn, config, tmp_path / f"{name}.log") for name in ("a", "b")
    ]
    rng = random.Random(20261125)
    kills, takeovers = 0, []
    try:
        for replica in replicas:
            replica.start()
        await wait_for(lambda: synced(helpdesk_conn), "the first start's watermark", 60)
        # 30 tickets breach one every 0.5 s from 2 s on: the kills land among the breaches.
        tickets = await breaching_tickets(helpdesk_conn, 30, start_in=2, every=0.5)
        for _ in range(3):
            leader = await leader_of(replicas)
            standby = next(r for r in replicas if r is not leader)
            await wait_for(lambda s=standby: s.role() == "standby", "a ready standby", 60)
            await asyncio.sleep(rng.uniform(0.2, 3.0))
            killed = time.monotonic()
            await asyncio.to_thread(leader.kill)
            kills += 1
            took = await wait_for(
                lambda s=standby: s.role() == "leader", "the standby leading", TAKEOVER_LIMIT
            )
            takeovers.append(time.monotonic() - killed)
            assert took <= TAKEOVER_LIMIT
            leader.start()  # back as the standby

        async def all_delivered() -> bool:
            return receiver.tickets() >= set(tickets) and await pending(helpdesk_conn) == 0

        await wait_for(all_delivered, "every breach delivered", 90)
    finally:
        for replica in replicas:
            replica.stop()
    print(f"takeover after SIGKILL (s): {[round(t, 2) for t in takeovers]}")
    triggers = receiver.triggers()
    assert receiver.tickets() == set(tickets)  # none lost
    repeats = sum(n - 1 for n in triggers.values())
    # No key twice, beyond a send the SIGKILL caught between the receiver's answer and the
    # commit of its row (at most one per kill: one sender per channel): at-least-once.
    assert repeats <= kills, triggers.most_common(3)
    print(f"deliveries: {len(triggers)} keys, {repeats} repeated POSTs")
    assert max(takeovers) <= TAKEOVER_LIMIT


@pytest.mark.parametrize("cut", ["network", "terminated"])
async def test_a_leader_that_loses_its_lock_connection_steps_down_and_the_standby_leads(
    database_dsn: str,
    helpdesk_conn: asyncpg.Connection,
    receiver: Receiver,
    tmp_path: Path,
    cut: str,
) -> None:
    """``network``: every connection of the leader cut (a TCP proxy); ``terminated``: only
    its lock session ended by the server (pg_terminate_backend), its pool still working, so
    only leadership (its proof and the claims' fence) stops its senders."""
    host, _, rest = database_dsn.partition("@")[2].partition(":")
    port = int(rest.split("/")[0])
    proxy = OutageProxy(host, port)
    await proxy.start()
    via_proxy = database_dsn.replace(f"{host}:{port}", f"127.0.0.1:{proxy.port}")
    # Each replica delivers to its own path: who sent what is known.
    a = Replica(
        "a",
        via_proxy,
        replica_config(tmp_path / "a.toml", f"{receiver.url}/a"),
        tmp_path / "a.log",
    )
    b = Replica(
        "b",
        database_dsn,
        replica_config(tmp_path / "b.toml", f"{receiver.url}/b"),
        tmp_path / "b.log",
    )
    try:
        a.start()
        await wait_for(lambda: a.role() == "leader", "a leading", 60)
        b.start()
        await wait_for(lambda: b.role() == "standby", "b a ready standby", 60)
        tickets = await breaching_tickets(helpdesk_conn, 24, start_in=1, every=0.5)
        await wait_for(lambda: len(receiver.deliveries) >= 3, "a delivering", 30)
        assert a.metric("sla_monitor_leader") == 1 and b.metric("sla_monitor_leader") == 0
        cut_at = time.monotonic()
        if cut == "network":
            await proxy.cut()
        else:
            await helpdesk_conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks "
                "WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
                "AND pid IN (SELECT pid FROM pg_stat_activity "
                "            WHERE application_name LIKE 'sla-monitor/%' "
                "            AND datname = current_database())"  # never another run's
            )
        stepped_down = await wait_for(
            lambda: a.metric("sla_monitor_leader") == 0, "a stepping down", 10
        )
        took = await wait_for(lambda: b.role() == "leader", "b leading", TAKEOVER_LIMIT)
        print(f"{cut}: a stepped down after {stepped_down:.2f} s, b leads after {took:.2f} s")
        assert stepped_down <= 1.5  # at once: its next check, one second at most

        async def all_delivered() -> bool:
            return receiver.tickets() >= set(tickets) and await pending(helpdesk_conn) == 0

        await wait_for(all_delivered, "every breach delivered", 60)
        if cut == "network":
            proxy.restore()
        await wait_for(lambda: a.role() == "standby", "a back as a ready standby", 30)
    finally:
        a.stop()
        b.stop()
        await proxy.close()
    by_a = [at for path, at, _ in receiver.deliveries if path == "/a"]
    by_b = [at for path, at, _ in receiver.deliveries if path == "/b"]
    assert by_a and by_b
    # Fencing: nothing from a once the lock was lost (beyond a send already under way), and
    # b sent nothing before a stopped.
    assert max(by_a) < cut_at + 0.5
    assert min(by_b) > max(by_a)
    assert receiver.tickets() == set(tickets)
    repeats = sum(n - 1 for n in receiver.triggers().values())
    assert repeats <= 1
    assert b.logged("took_over") and a.logged("stepped_down")


async def test_replicas_with_different_policies_warn_with_both_hashes(
    database_dsn: str, helpdesk_conn: asyncpg.Connection, receiver: Receiver, tmp_path: Path
) -> None:
    a = Replica(
        "a",
        database_dsn,
        replica_config(tmp_path / "a.toml", f"{receiver.url}/w"),
        tmp_path / "a.log",
    )
    b = Replica(
        "b",
        database_dsn,
        replica_config(
            tmp_path / "b.toml", f"{receiver.url}/w", '[policies.default]\nfirst_response = "2h"\n'
        ),
        tmp_path / "b.log",
    )
    try:
        a.start()
        await wait_for(lambda: a.role() == "leader", "a leading", 60)
        b.start()
        await wait_for(lambda: b.logged("config_mismatch"), "b warning", 30)
        await wait_for(lambda: a.logged("config_mismatch"), "a warning", 30)
    finally:
        a.stop()
        b.stop()
    hash_a = json.loads(a.logged('"replica"')[0])["config_hash"]
    hash_b = json.loads(b.logged('"replica"')[0])["config_hash"]
    assert hash_a != hash_b
    [warning] = [json.loads(line) for line in b.logged("config_mismatch")]
    assert (warning["own_hash"], warning["peer_hash"]) == (hash_b, hash_a)
    [warning] = [json.loads(line) for line in a.logged("config_mismatch")]
    assert (warning["own_hash"], warning["peer_hash"]) == (hash_a, hash_b)


async def test_a_standby_refuses_to_lead_with_a_configuration_that_fails_validation(
    database_dsn: str, helpdesk_conn: asyncpg.Connection, receiver: Receiver, tmp_path: Path
) -> None:
    config = replica_config(tmp_path / "b.toml", f"{receiver.url}/w")
    good = config.read_text()
    a = Replica(
        "a",
        database_dsn,
        replica_config(tmp_path / "a.toml", f"{receiver.url}/w"),
        tmp_path / "a.log",
    )
    b = Replica("b", database_dsn, config, tmp_path / "b.log")
    try:
        a.start()
        await wait_for(lambda: a.role() == "leader", "a leading", 60)
        b.start()
        await wait_for(lambda: b.role() == "standby", "b a ready standby", 60)
        config.write_text(good + '[policies.default]\nfirst_response = "soon"\n')
        await asyncio.to_thread(a.kill)
        await wait_for(lambda: b.logged("refusing_to_lead"), "b refusing", 10)
        await asyncio.sleep(5)  # longer than a takeover takes
        assert b.role() == "standby"
        assert "policies.default.first_response" in b.logged("refusing_to_lead")[0]
        config.write_text(good)
        await wait_for(lambda: b.role() == "leader", "b leading once fixed", TAKEOVER_LIMIT)
    finally:
        a.stop()
        b.stop()

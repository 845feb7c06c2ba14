"""The leadership state machine (sla_monitor.leadership) with an injected clock and a lock
that a test hands out and takes away."""

from __future__ import annotations

import asyncio

import pytest
import structlog

from sla_monitor.config import Settings
from sla_monitor.errors import DatabaseUnavailable
from sla_monitor.leadership import (
    Leadership,
    Role,
    application_name,
    config_hash,
    lock_key,
)


class Lock:
    """One advisory lock shared by the sessions of a test: held by at most one of them."""

    def __init__(self) -> None:
        self.holder: Session | None = None


class Session:
    def __init__(self, lock: Lock, peers: list[str] | None = None) -> None:
        self.lock = lock
        self.backend_pid = id(self)
        self.alive = True
        self.hang = False
        self._peers = peers or []

    async def try_lock(self) -> bool:
        self._check()
        if self.lock.holder is None:
            self.lock.holder = self
        return self.lock.holder is self

    async def holds_lock(self) -> bool:
        self._check()
        if self.hang:
            await asyncio.sleep(10)
        return self.lock.holder is self

    async def peers(self) -> list[str]:
        self._check()
        return self._peers

    def close(self) -> None:
        self.alive = False
        if self.lock.holder is self:
            self.lock.holder = None

    def _check(self) -> None:
        if not self.alive:
            raise DatabaseUnavailable(ConnectionResetError("connection lost"))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Replica:
    def __init__(
        self, lock: Lock, clock: Clock, peers: list[str] | None = None, **kwargs: object
    ) -> None:
        self.sessions: list[Session] = []
        self.events: list[str] = []

        async def connect() -> Session:
            session = Session(lock, peers)
            self.sessions.append(session)
            return session

        self.leadership = Leadership(
            connect,
            "aaaaaaaaaaaa",
            clock=clock,
            on_lead=lambda: self.events.append("lead"),
            on_step_down=lambda reason: self.events.append(f"down: {reason}"),
            **kwargs,  # type: ignore[arg-type]
        )


async def test_the_first_to_lock_leads_after_a_grace_of_one_lease() -> None:
    lock, clock = Lock(), Clock()
    a, b = Replica(lock, clock), Replica(lock, clock)
    await a.leadership.step()
    await b.leadership.step()
    assert a.leadership.role is Role.LEADER and b.leadership.role is Role.STANDBY
    assert not a.leadership.leading() and a.events == []  # the grace: 1 s + 2 s
    clock.now = 2.9
    await a.leadership.step()
    assert not a.leadership.leading()
    clock.now = 3.0
    await a.leadership.step()
    assert a.leadership.leading() and a.events == ["lead"]
    await b.leadership.step()
    assert not b.leadership.leading() and b.leadership.role_name == "standby"


async def test_a_leader_whose_proof_goes_stale_stops_on_its_clock_alone() -> None:
    lock, clock = Lock(), Clock()
    a = Replica(lock, clock, timeout=0.05)  # lease: 1.05 s
    await a.leadership.step()
    clock.now = 1.05
    await a.leadership.step()
    assert a.leadership.leading()
    # No proof for a while (the tick is late): the last one, sent at 1.05, is trusted 1.05 s.
    clock.now = 2.09
    assert a.leadership.leading()
    clock.now = 2.1
    assert not a.leadership.leading()
    # The check hangs (a network that swallows packets): the tick times out and steps down.
    a.sessions[0].hang = True
    await a.leadership.step()
    assert a.events[-1].startswith("down: lock connection failed: TimeoutError")
    assert a.leadership.role is Role.STANDBY and not a.sessions[0].alive


async def test_a_lost_connection_steps_down_at_once_and_the_standby_takes_over() -> None:
    lock, clock = Lock(), Clock()
    a, b = Replica(lock, clock), Replica(lock, clock)
    await a.leadership.step()
    clock.now = 3.0
    await a.leadership.step()
    await b.leadership.step()
    assert a.leadership.leading()
    # The server drops a's session: the lock is free, a's next proof fails.
    a.sessions[-1].close()
    clock.now = 3.5
    await b.leadership.step()
    assert b.leadership.role is Role.LEADER and not b.leadership.leading()  # in its grace
    clock.now = 4.0
    await a.leadership.step()
    assert not a.leadership.leading()
    assert a.events == ["lead", "down: lock connection failed: DatabaseUnavailable: "
                        "ConnectionResetError: connection lost"]  # fmt: skip
    # The fencing bound: a stopped (4.0) before b may lead (3.5 + 3.0), and could not have
    # led past its last proof (3.0) + lease anyway.
    clock.now = 6.5
    await b.leadership.step()
    assert b.leadership.leading() and b.events == ["lead"]
    await a.leadership.step()  # after stepping down, a lets the others try first (a lease)
    assert len(a.sessions) == 1
    clock.now = 7.0
    await a.leadership.step()  # a new session, which cannot have the lock
    assert a.leadership.role is Role.STANDBY and len(a.sessions) == 2


async def test_a_lock_taken_away_steps_down() -> None:
    lock, clock = Lock(), Clock()
    a = Replica(lock, clock)
    await a.leadership.step()
    clock.now = 3.0
    await a.leadership.step()
    lock.holder = None  # e.g. pg_advisory_unlock_all by an operator
    clock.now = 4.0
    await a.leadership.step()
    assert a.events[-1] == "down: the lock is no longer held by this replica's session"
    assert not a.sessions[0].alive  # its session dropped; a new one tries again


async def test_losing_the_lock_during_the_grace_never_leads() -> None:
    lock, clock = Lock(), Clock()
    a = Replica(lock, clock)
    await a.leadership.step()
    a.sessions[0].close()
    clock.now = 1.0
    await a.leadership.step()
    clock.now = 4.0
    assert not a.leadership.leading() and a.events == []  # no lead, so no step-down either


async def test_a_replica_refusing_to_lead_never_takes_the_lock() -> None:
    lock, clock = Lock(), Clock()
    reason: list[str | None] = ["the configuration no longer validates: x"]
    a = Replica(lock, clock, may_lead=lambda: reason[0])
    with structlog.testing.capture_logs() as logs:
        for second in range(5):
            clock.now = float(second)
            await a.leadership.step()
    assert lock.holder is None and a.events == []
    assert [line["event"] for line in logs] == ["refusing_to_lead"]  # once, not every tick
    reason[0] = None
    await a.leadership.step()
    assert lock.holder is not None


async def test_a_peer_with_another_config_hash_is_warned_about_once() -> None:
    lock, clock = Lock(), Clock()
    peers = ["sla-monitor/sla_monitor/helpdesk/aaaaaaaaaaaa", "sla-monitor/x/y/bbbbbbbbbbbb"]
    a = Replica(lock, clock, peers=peers)
    with structlog.testing.capture_logs() as logs:
        for second in range(30):
            clock.now = float(second)
            await a.leadership.step()
    mismatches = [line for line in logs if line["event"] == "config_mismatch"]
    assert len(mismatches) == 1
    assert mismatches[0]["own_hash"] == "aaaaaaaaaaaa"
    assert mismatches[0]["peer_hash"] == "bbbbbbbbbbbb"


def test_the_config_hash_follows_policies_not_ports_nor_secrets() -> None:
    base = Settings()
    assert config_hash(base) == config_hash(Settings(daemon={"listen_port": 1234}))
    assert config_hash(base) != config_hash(Settings(policies={"default": {"resolution": "9h"}}))
    secret = Settings(
        escalation={"channels": {"slack": {"webhook_url": "https://hooks.example/SECRET"}}}
    )
    assert "SECRET" not in repr(secret.model_dump(mode="json"))
    assert len(config_hash(base)) == 12


def test_lock_keys_and_application_names() -> None:
    assert lock_key("sla_monitor", "helpdesk") != lock_key("sla_monitor", "rt")
    assert 0 <= lock_key("a" * 60, "b" * 60) < 2**62
    long = application_name("s" * 63, "helpdesk", "0123456789ab")
    assert len(long) == 63 and long.endswith("s/0123456789ab")
    assert (
        application_name("sla_monitor", "helpdesk", "ab") == "sla-monitor/sla_monitor/helpdesk/ab"
    )


@pytest.mark.parametrize("seconds", [0.5, 2.0])
async def test_a_standby_never_leads_while_another_holds_the_lock(seconds: float) -> None:
    lock, clock = Lock(), Clock()
    a, b = Replica(lock, clock), Replica(lock, clock)
    await a.leadership.step()
    for tick in range(20):
        clock.now = tick * seconds
        await a.leadership.step()
        await b.leadership.step()
        assert not (a.leadership.leading() and b.leadership.leading())
        assert not b.leadership.leading()

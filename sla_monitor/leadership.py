"""Active/standby replicas: exactly one leader among the daemons sharing a state database.

The leader is the replica holding a PostgreSQL session advisory lock (keyed by schema and
source) on a connection of its own, not one of the pool's: a session lock lives exactly as
long as that server session, so it works directly and through PgBouncer in *session* mode (in
transaction mode a session lock is meaningless: see README, "Running two replicas").

Every ``interval`` the standby tries the lock and the leader proves it still holds it (a
query on the lock connection that reads pg_locks). The proof is dated by when its query was
*sent*: ``leading()`` is true only while the last proof is younger than the lease
(``interval + timeout``), so a leader whose lock connection hangs or drops stops on its own
clock, even before its check fails. A failed or negative check, or a lost connection, steps
down at once (``on_step_down``). A replica that acquires the lock waits one lease (the grace)
before it leads: a leader that lost the lock without noticing (the server dropped a session
whose client is cut off) has stopped by then, because its last proof predates the release.
Claims are fenced in the database too (``fence``): a claim commits only while the lock is
held by the claimant's lock session.

Replicas tell their configuration's hash in their lock session's application_name; one that
sees a different hash among its peers logs ``config_mismatch`` with both. ``may_lead`` lets
the service refuse the lead (a configuration on disk that no longer validates).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from enum import Enum
from typing import Any, Protocol

import asyncpg
import structlog

from sla_monitor.errors import DATABASE_ERRORS, DatabaseUnavailable, translates
from sla_monitor.sql import load_queries

log = structlog.get_logger("sla_monitor.leadership")

_QUERIES = load_queries("sla_monitor.store", "leadership.sql")
_TRY_LOCK = _QUERIES["try_lock"]
_HOLDS_LOCK = _QUERIES["holds_lock"]
_HELD_BY = _QUERIES["held_by"]
_BACKEND_PID = _QUERIES["backend_pid"]
_PEERS = _QUERIES["peers"]
_KEEPALIVES = _QUERIES["keepalives"]

INTERVAL = 1.0  # seconds between a standby's tries and a leader's proofs
TIMEOUT = 2.0  # the longest a connect, try or proof may take
PEER_CHECK = 10.0  # seconds between looks at the other replicas' configuration hashes
APPLICATION = "sla-monitor"
# Settings that may differ between replicas of one deployment: not part of the hash.
_LOCAL_SECTIONS = frozenset({"daemon", "http", "database"})


def lock_key(schema: str, source: str) -> int:
    """The advisory lock's key: one leader per schema and source (62 bits, so both halves
    are plain non-negative integers)."""
    digest = hashlib.sha256(f"sla-monitor/leader/{schema}/{source}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 62) - 1)


def config_hash(settings: Any) -> str:
    """12 hex digits of the validated configuration that must agree between replicas
    (policies, statuses, priorities, calendars, escalation, updates, ...): everything but
    [daemon], [http] and [database]. Secrets enter masked, never their values."""
    dumped = settings.model_dump(mode="json", exclude=set(_LOCAL_SECTIONS))
    text = json.dumps(dumped, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def application_name(schema: str, source: str, hashed: str) -> str:
    """``sla-monitor/<schema>/<source>/<hash>``, cut to PostgreSQL's 63 bytes (hash kept)."""
    prefix = f"{APPLICATION}/{schema}/{source}"[: 62 - len(hashed)]
    return f"{prefix}/{hashed}"


class Role(Enum):
    STANDBY = "standby"
    LEADER = "leader"


class LockSession(Protocol):
    """The lock's connection, as Leadership uses it."""

    backend_pid: int

    async def try_lock(self) -> bool: ...

    async def holds_lock(self) -> bool: ...

    async def peers(self) -> list[str]: ...

    def close(self) -> None: ...


class PgLockSession:
    """A dedicated asyncpg connection holding (or trying) the session advisory lock."""

    def __init__(self, conn: asyncpg.Connection, key: int, prefix: str, pid: int) -> None:
        self._conn = conn
        self._halves = (key >> 32, key & 0xFFFFFFFF)
        self._prefix = prefix
        self.backend_pid = pid

    @classmethod
    @translates
    async def connect(cls, dsn: str, key: int, name: str) -> PgLockSession:
        # No statement cache: PgBouncer may not keep prepared statements.
        conn = await asyncpg.connect(
            dsn,
            timeout=TIMEOUT,
            statement_cache_size=0,
            server_settings={"application_name": name},
        )
        try:
            await conn.fetchrow(_KEEPALIVES)
            pid = int(await conn.fetchval(_BACKEND_PID))
        except BaseException:
            conn.terminate()
            raise
        return cls(conn, key, name.rsplit("/", 1)[0] + "/", pid)

    @translates
    async def try_lock(self) -> bool:
        return bool(await self._conn.fetchval(_TRY_LOCK, *self._halves))

    @translates
    async def holds_lock(self) -> bool:
        return bool(await self._conn.fetchval(_HOLDS_LOCK, *self._halves))

    @translates
    async def peers(self) -> list[str]:
        return [row[0] for row in await self._conn.fetch(_PEERS, self._prefix)]

    def close(self) -> None:
        """Drops the connection at once (the server releases the lock when it sees it)."""
        self._conn.terminate()


class Leadership:
    """The leader election's state machine; ``step()`` is one tick, ``run()`` ticks forever.

    ``connect()`` opens a LockSession; ``clock`` is monotonic seconds (injectable);
    ``on_lead()`` runs when the grace after acquiring has passed, ``on_step_down(reason)``
    when leadership is lost. ``may_lead()`` returns why this replica must not lead, or None.
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        config_hash: str,
        *,
        interval: float = INTERVAL,
        timeout: float = TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        may_lead: Callable[[], str | None] = lambda: None,
        on_lead: Callable[[], None] = lambda: None,
        on_step_down: Callable[[str], None] = lambda reason: None,
        on_change: Callable[[bool], None] = lambda leading: None,
    ) -> None:
        self._connect = connect
        self.config_hash = config_hash
        self.interval = interval
        self.timeout = timeout
        self.clock = clock
        self.may_lead = may_lead
        self.on_lead = on_lead
        self.on_step_down = on_step_down
        self.on_change = on_change
        self.role = Role.STANDBY
        self.session: LockSession | None = None
        self.acquired_at: float | None = None  # when the lock was acquired
        self.proved_at: float | None = None  # when the last successful proof was sent
        self._led = False  # on_lead has run for the current tenure
        self._next_peer_check = 0.0
        self._mismatches: set[str] = set()
        self._refused: str | None = None
        self._retry_at = 0.0  # a replica that stepped down lets the others try first
        self.takeovers = 0

    @property
    def lease(self) -> float:
        """How long a proof is trusted; also the grace a new leader waits."""
        return self.interval + self.timeout

    def _valid(self) -> bool:
        """The lock is held, proven less than a lease ago, and the grace is over."""
        if self.role is not Role.LEADER or self.proved_at is None or self.acquired_at is None:
            return False
        now = self.clock()
        return now - self.proved_at < self.lease and now >= self.acquired_at + self.lease

    def leading(self) -> bool:
        """True while this replica may record and deliver: it has taken the lead (on_lead
        ran) and its lock is proven less than a lease ago. Turns false on the clock alone."""
        return self._led and self._valid()

    @property
    def role_name(self) -> str:
        return "leader" if self.leading() else "standby"

    async def fence(self, conn: asyncpg.Connection, key: int) -> bool:
        """In the caller's transaction: does this replica's lock session hold the lock now?"""
        if self.session is None or not self.leading():
            return False
        with contextlib.suppress(*DATABASE_ERRORS):
            return bool(
                await conn.fetchval(_HELD_BY, key >> 32, key & 0xFFFFFFFF, self.session.backend_pid)
            )
        return False

    async def step(self) -> None:
        """One tick: connect if needed, then try the lock (standby) or prove it (leader)."""
        was_leading = self.leading()
        try:
            await self._tick()
        except (DatabaseUnavailable, TimeoutError) as error:
            reason = f"lock connection failed: {type(error).__name__}: {error}"
            if self.role is Role.LEADER:
                self.step_down(reason)
            else:
                self._drop_session()
                log.warning("leadership_unavailable", error=reason)
        if self.role is Role.LEADER and not self._led and self._valid():
            self._led = True
            self.takeovers += 1
            log.info("leading", config_hash=self.config_hash)
            self.on_lead()
        elif self._led and not self._valid():
            # The proof went stale (a check that hangs): stop, whatever the check says later.
            self.step_down("the lock could not be proven within the lease")
        now_leading = self.leading()
        if now_leading != was_leading:
            self.on_change(now_leading)

    async def _tick(self) -> None:
        if self.role is Role.STANDBY:
            refused = self.may_lead()
            if refused != self._refused:
                self._refused = refused
                if refused is not None:
                    log.error("refusing_to_lead", reason=refused)
            if refused is not None:
                if self.session is not None:
                    await self._check_peers()
                return
            if self.clock() < self._retry_at:
                return
        session = self.session
        if session is None:
            connected: LockSession = await asyncio.wait_for(self._connect(), self.timeout)
            session = self.session = connected
            self._next_peer_check = 0.0
        await self._check_peers()
        sent = self.clock()
        if self.role is Role.STANDBY:
            if await asyncio.wait_for(session.try_lock(), self.timeout):
                self.role = Role.LEADER
                self.acquired_at = self.proved_at = sent
                self._led = False
                log.info("lock_acquired", grace=self.lease, config_hash=self.config_hash)
            return
        if await asyncio.wait_for(session.holds_lock(), self.timeout):
            self.proved_at = sent
        else:
            self.step_down("the lock is no longer held by this replica's session")

    async def _check_peers(self) -> None:
        if self.session is None or self.clock() < self._next_peer_check:
            return
        self._next_peer_check = self.clock() + PEER_CHECK
        for name in await asyncio.wait_for(self.session.peers(), self.timeout):
            peer = name.rsplit("/", 1)[-1]
            if peer != self.config_hash and peer not in self._mismatches:
                self._mismatches.add(peer)
                log.warning(
                    "config_mismatch",
                    own_hash=self.config_hash,
                    peer_hash=peer,
                    detail="another replica runs with a different configuration (policies, "
                    "escalation ...): outcomes differ with the leader; deploy one configuration",
                )

    def step_down(self, reason: str) -> None:
        """Stops leading at once and drops the lock connection (a new one tries again)."""
        led = self._led
        self.role = Role.STANDBY
        self.acquired_at = self.proved_at = None
        self._led = False
        self._retry_at = self.clock() + self.lease
        self._drop_session()
        log.warning("stepped_down", reason=reason, led=led)
        if led:
            self.on_step_down(reason)

    def _drop_session(self) -> None:
        if self.session is not None:
            with contextlib.suppress(Exception):
                self.session.close()
            self.session = None

    async def run(self) -> None:
        """Ticks every ``interval`` until cancelled (a supervised task)."""
        try:
            while True:
                await self.step()
                await asyncio.sleep(self.interval)
        finally:
            if self.role is Role.LEADER:
                self.step_down("stopping")
            self._drop_session()

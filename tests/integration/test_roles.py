"""The least-privilege role layout of deploy/postgresql/roles.sql, applied as shipped: the
daemon migrates, syncs and records as the schema's owner while reading the helpdesk as a role
that can only read it."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from sla_monitor.schema import UpdateSettings
from sla_monitor.sources.sql import REFERENCE_SCHEMA
from tests.integration.peers import free_port, until
from tests.integration.test_cli import sla_monitor, spawn_daemon

ROLES_SQL = Path(__file__).parents[2] / "deploy" / "postgresql" / "roles.sql"


def as_role(dsn: str, role: str) -> str:
    parts = urlsplit(dsn)
    host = parts.hostname or "127.0.0.1"
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{role}@{host}{port}"))


def statements(sql: str, owner: str, reader: str, optional: bool = False) -> list[str]:
    """The file's statements with the roles renamed for this test (roles are cluster-wide);
    ``optional``: section 3's commented grants too."""
    lines = []
    for line in sql.splitlines():
        if optional and line.startswith("-- GRANT"):
            line = line.removeprefix("-- ")
        if not line.startswith("--"):
            lines.append(line.split("--")[0])
    text = "\n".join(lines)
    text = re.sub(r"\bsla_monitor_reader\b", reader, text)
    text = re.sub(r"\b(ROLE|AUTHORIZATION) sla_monitor\b", rf"\1 {owner}", text)
    return [s.strip() for s in text.split(";") if s.strip()]


@pytest.fixture
async def roles(database_dsn: str) -> AsyncIterator[tuple[str, str, asyncpg.Connection]]:
    suffix = uuid.uuid4().hex[:8]
    owner, reader = f"slam_owner_{suffix}", f"slam_reader_{suffix}"
    admin = await asyncpg.connect(database_dsn)
    await admin.execute(REFERENCE_SCHEMA)
    try:
        for statement in statements(ROLES_SQL.read_text(), owner, reader):
            await admin.execute(statement)
        yield owner, reader, admin
    finally:
        await admin.execute(f"DROP OWNED BY {owner}, {reader} CASCADE")
        await admin.close()
        # The roles' connections may still be closing: retry for a moment.
        server = await asyncpg.connect(database_dsn)
        try:
            for role in (owner, reader):
                for _ in range(50):
                    try:
                        await server.execute(f"DROP ROLE IF EXISTS {role}")
                        break
                    except asyncpg.DependentObjectsStillInUseError:
                        await asyncio.sleep(0.1)
        finally:
            await server.close()


async def test_the_shipped_roles_run_the_daemon_and_the_reader_cannot_write(
    database_dsn: str, roles: tuple[str, str, asyncpg.Connection], tmp_path: Path
) -> None:
    owner, reader, admin = roles
    ticket = await admin.fetchval(
        "INSERT INTO helpdesk.tickets (subject, created_at) VALUES ('late', $1) RETURNING id",
        datetime.now(UTC) - timedelta(hours=2),
    )
    owner_dsn, reader_dsn = as_role(database_dsn, owner), as_role(database_dsn, reader)

    env = {"SLA_MONITOR_DATABASE__DSN": owner_dsn, "SLA_MONITOR_SOURCE__DSN": reader_dsn}
    migrated = sla_monitor("migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert (
        await admin.fetchval(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'sla_monitor' AND tableowner = $1",
            owner,
        )
        >= 5
    )

    port = free_port()
    process = spawn_daemon(owner_dsn, port, env={"SLA_MONITOR_SOURCE__DSN": reader_dsn})

    async def breach_recorded() -> bool:
        return bool(
            await admin.fetchval(
                "SELECT count(*) FROM sla_monitor.breaches WHERE ticket_id = $1", str(ticket)
            )
        )

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as answer:
                return bool(json.load(answer)["status"] == "ready")
        except OSError:
            return False

    try:
        await until(breach_recorded, "the late ticket's breach, recorded as the owner", 60)
        await until(ready, "/readyz ready", 30)
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 10)
    assert process.returncode == 0

    # The reader reads, and nothing more; the owner cannot touch the helpdesk at all.
    as_reader = await asyncpg.connect(reader_dsn)
    as_owner = await asyncpg.connect(owner_dsn)
    try:
        assert await as_reader.fetchval("SELECT count(*) FROM helpdesk.tickets") == 1
        for statement in (
            "UPDATE helpdesk.tickets SET status = 'resolved'",
            "DELETE FROM helpdesk.ticket_events",
            "INSERT INTO helpdesk.ticket_events (ticket_id, kind) VALUES (1, 'public_reply')",
            "CREATE TABLE helpdesk.x (a int)",
            "SELECT count(*) FROM sla_monitor.breaches",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await as_reader.execute(statement)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await as_owner.execute("SELECT count(*) FROM helpdesk.tickets")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await as_owner.execute("CREATE SCHEMA elsewhere")
    finally:
        await as_reader.close()
        await as_owner.close()


async def test_the_optional_grants_let_the_reader_post_updates_and_nothing_else(
    database_dsn: str, roles: tuple[str, str, asyncpg.Connection]
) -> None:
    owner, reader, admin = roles
    for statement in statements(ROLES_SQL.read_text(), owner, reader, optional=True):
        if "INSERT" in statement or "SEQUENCE" in statement or "UPDATE (" in statement:
            await admin.execute(statement)
    ticket = await admin.fetchval(
        "INSERT INTO helpdesk.tickets (subject) VALUES ('x') RETURNING id"
    )
    as_reader = await asyncpg.connect(as_role(database_dsn, reader))
    try:
        # The shipped default insert, as the updater runs it (sla_monitor.notifiers.helpdesk_sql).
        insert = UpdateSettings().insert_query
        await as_reader.execute(insert, str(ticket), "An update", "key-1", "sla-monitor")
        await as_reader.execute(insert, str(ticket), "An update", "key-1", "sla-monitor")
        assert await admin.fetchval("SELECT count(*) FROM helpdesk.ticket_events") == 1
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await as_reader.execute("UPDATE helpdesk.tickets SET status = 'resolved'")
    finally:
        await as_reader.close()

"""A real PostgreSQL for the integration tests.

``SLA_MONITOR_TEST_DSN`` (an admin DSN, e.g. postgresql://postgres@127.0.0.1:5432/postgres)
when set, else an embedded pgserver instance. Every test gets a database of its own, dropped
afterwards.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
def admin_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if dsn := os.environ.get("SLA_MONITOR_TEST_DSN"):
        yield dsn
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@pytest.fixture
async def database_dsn(admin_dsn: str) -> AsyncIterator[str]:
    name = f"sla_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield with_database(admin_dsn, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(autouse=True)
def _structlog_restored() -> Iterator[None]:
    """A test that runs the CLI in-process configures structlog to write to the sys.stderr of
    that moment, pytest's capture of that test, closed afterwards: later tests logging through
    it failed with "I/O operation on closed file" (seen when tests/unit ran first)."""
    import structlog

    saved = structlog.get_config()
    yield
    structlog.configure(**saved)

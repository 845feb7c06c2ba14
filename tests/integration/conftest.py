"""Fixtures of the integration tests: a pool on the test's own database and the reference
helpdesk schema in it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.integration.helpdesk import Helpdesk


@pytest.fixture
async def pool(database_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def helpdesk(pool: asyncpg.Pool) -> AsyncIterator[Helpdesk]:
    async with pool.acquire() as conn:
        yield await Helpdesk.create(conn)

"""Posts a customer progress update into the helpdesk with the configured SQL insert.

The insert receives the idempotency key and must ignore a second insert with the same key, so a
delivery retried after a crash can never post twice.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from sla_monitor.database import Pool
from sla_monitor.errors import DATABASE_ERRORS
from sla_monitor.notifiers import DeliveryError


class HelpdeskSqlUpdater:
    name = "helpdesk"

    def __init__(self, pool: Pool, insert_query: str, author: str) -> None:
        self._pool = pool
        self._query = insert_query
        self._author = author

    async def deliver(
        self, session: aiohttp.ClientSession, action: str, alert: dict[str, Any]
    ) -> None:
        try:
            async with self._pool.acquire() as conn:
                await conn.execute(
                    self._query,
                    alert["ticket_id"],
                    alert["body"],
                    alert["dedup_key"],
                    self._author,
                )
        except DATABASE_ERRORS as error:
            raise DeliveryError(f"update insert failed: {type(error).__name__}: {error}") from error

"""Posts progress updates to Request Tracker 5 as a correspondence through REST2, never by
writing RT's tables; RT's own tables (read-only, rt.sql) tell whether it was posted already."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import aiohttp

from sla_monitor.database import Pool
from sla_monitor.errors import DATABASE_ERRORS
from sla_monitor.notifiers import DeliveryError, post_json
from sla_monitor.sql import load_queries

_ALREADY_POSTED = load_queries("sla_monitor.notifiers", "rt.sql")["already_posted"]


class RtUpdater:
    """Posts a progress update as a correspondence through RT's REST2 API.

    When a delivery is uncertain (a retry after a crash or a timeout), RT is asked first
    whether sla-monitor's user already corresponded since the update window opened, so a
    customer never receives the same update twice.
    """

    name = "rt"

    def __init__(self, url: str, auth: dict[str, str], author: str, pool: Pool) -> None:
        self.url = url.rstrip("/")
        self._headers = auth
        self._author = author
        self._pool = pool

    async def already_posted(self, ticket_id: str, since: datetime) -> bool:
        async with self._pool.acquire() as conn:
            return bool(await conn.fetchval(_ALREADY_POSTED, ticket_id, self._author, since))

    async def deliver(
        self, session: aiohttp.ClientSession, action: str, alert: dict[str, Any]
    ) -> None:
        try:
            window = datetime.fromisoformat(alert["window_start"])
            if await self.already_posted(alert["ticket_id"], window):
                return
        except DATABASE_ERRORS as error:
            raise DeliveryError(f"cannot check RT before posting: {error}") from error
        body = json.dumps({"Content": alert["body"], "ContentType": "text/plain"}).encode()
        await post_json(
            session,
            self.name,
            f"{self.url}/REST/2.0/ticket/{alert['ticket_id']}/correspond",
            body,
            self._headers,
        )

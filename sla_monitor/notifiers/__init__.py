"""Notifiers deliver one outbox row (a trigger or a resolve of an escalation) to a channel.

The alert every notifier receives is the JSON the daemon recorded with the escalation:
``{"labels": {...}, "annotations": {...}, "startsAt": iso, "dedup_key": str}``.
A notifier raises DeliveryError for anything worth retrying.
"""

from __future__ import annotations

from typing import Any, Protocol

import aiohttp


class DeliveryError(Exception):
    """The channel did not accept the message; the outbox retries it with backoff."""


class Notifier(Protocol):
    name: str

    async def deliver(
        self, session: aiohttp.ClientSession, action: str, alert: dict[str, Any]
    ) -> None: ...


async def post_json(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str] | None = None
) -> None:
    """POSTs a JSON body; any non-2xx answer or transport failure is a DeliveryError."""
    try:
        async with session.post(
            url, data=body, headers={"Content-Type": "application/json", **(headers or {})}
        ) as response:
            if response.status >= 300:
                text = (await response.text())[:200]
                raise DeliveryError(f"HTTP {response.status} from {url}: {text}")
    except (aiohttp.ClientError, TimeoutError) as error:
        raise DeliveryError(f"{type(error).__name__} posting to {url}: {error}") from error

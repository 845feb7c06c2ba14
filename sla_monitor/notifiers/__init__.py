"""Notifiers deliver one outbox row (a trigger or a resolve of an escalation) to a channel.

The alert every notifier receives is the JSON the daemon recorded with the escalation:
``{"labels": {...}, "annotations": {...}, "startsAt": iso, "dedup_key": str}``.
A notifier raises DeliveryError for anything worth retrying, PermanentDeliveryError for an
answer that repeating cannot change (a configuration problem). Errors name the channel, never
its URL: a Slack webhook URL, a routing key or a path can be the secret itself.
"""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp


class DeliveryError(Exception):
    """The channel did not accept the message; the outbox retries it with backoff.

    ``retry_after``: seconds the channel asked us to wait (HTTP Retry-After), if it did."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """The channel refused the message for good (400, 401, 403, 404, 410, 422): a wrong URL,
    key or payload. The outbox parks the row and marks the channel down."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


# Answers that repeating the same request cannot change; 429 and 5xx stay retryable.
PERMANENT_STATUSES = frozenset({400, 401, 403, 404, 410, 422})


class Notifier(Protocol):
    name: str

    async def deliver(
        self, session: aiohttp.ClientSession, action: str, alert: dict[str, Any]
    ) -> None: ...


def retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (its HTTP-date form is ignored: rare for these APIs)."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


async def post_json(
    session: aiohttp.ClientSession,
    channel: str,
    url: str,
    body: bytes,
    headers: dict[str, str] | None = None,
    secrets: tuple[str, ...] = (),
) -> None:
    """POSTs a JSON body; any non-2xx answer or transport failure is a DeliveryError naming
    ``channel`` (never ``url``; ``secrets`` and the URL are blanked from a quoted answer)."""
    try:
        async with session.post(
            url, data=body, headers={"Content-Type": "application/json", **(headers or {})}
        ) as response:
            if response.status >= 300:
                # An answer may quote the request: its URL, path (a Slack webhook's is the
                # secret) or body (a routing key).
                path = urlsplit(url).path
                hidden = (url, *([path] if len(path) > 1 else []), *secrets)
                text = redact((await response.text())[:200], hidden)
                message = f"HTTP {response.status} from {channel}: {text}"
                if response.status in PERMANENT_STATUSES:
                    raise PermanentDeliveryError(message, response.status)
                raise DeliveryError(message, retry_after(response.headers.get("Retry-After")))
    except (aiohttp.ClientError, TimeoutError) as error:
        # Only the OS reason: aiohttp's own text can quote the URL or the host.
        reason = f": {error.strerror}" if isinstance(error, OSError) and error.strerror else ""
        raise DeliveryError(f"{type(error).__name__} posting to {channel}{reason}") from error

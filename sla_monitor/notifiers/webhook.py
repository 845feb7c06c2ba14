"""A generic JSON webhook, signed with HMAC-SHA256 so the receiver can trust it.

Headers: ``X-SLA-Monitor-Signature: sha256=<hex of HMAC(secret, body)>`` and
``X-SLA-Monitor-Delivery: <dedup_key>/<action>``, stable across retries, so a receiver can
drop a repeat. A backlog summary or a storm digest carries ``"kind": "backlog"`` or
``"digest"`` and a ``count`` annotation, and no ticket_id label.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import aiohttp

from sla_monitor.notifiers import post_json


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookNotifier:
    def __init__(self, url: str, secret: str, name: str = "webhook") -> None:
        self.name = name  # also "update_webhook", customer updates by webhook
        self.url = url
        self._secret = secret

    async def deliver(
        self, session: aiohttp.ClientSession, action: str, alert: dict[str, Any]
    ) -> None:
        body = json.dumps({"action": action, **alert}, sort_keys=True).encode()
        headers = {
            "X-SLA-Monitor-Signature": sign(self._secret, body),
            "X-SLA-Monitor-Delivery": f"{alert['dedup_key']}/{action}",
        }
        await post_json(session, self.name, self.url, body, headers, (self._secret,))

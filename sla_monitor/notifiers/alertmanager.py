"""Prometheus Alertmanager, API v2: POST /api/v2/alerts.

Alertmanager forgets an alert at its endsAt, so active alerts are re-sent before then
(see ``resend``); a resolve sends endsAt = now. A backlog summary or a storm digest is one
alert (its ``count`` annotation says of how many escalations) that is never re-sent: it
expires by itself after four resend intervals.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from sla_monitor.notifiers import post_json


def to_alertmanager(alert: dict[str, Any], ends_at: datetime) -> dict[str, Any]:
    return {
        "labels": alert["labels"],
        "annotations": alert["annotations"],
        "startsAt": alert["startsAt"],
        "endsAt": ends_at.isoformat(),
        "generatorURL": alert["annotations"].get("ticket_url", ""),
    }


class AlertmanagerNotifier:
    name = "alertmanager"

    def __init__(self, url: str, resend_interval: float) -> None:
        self.url = url.rstrip("/") + "/api/v2/alerts"
        # Generous: three missed re-sends before Alertmanager would resolve by itself.
        self.lifetime = timedelta(seconds=4 * resend_interval)

    async def deliver(
        self, session: aiohttp.ClientSession, action: str, alert: dict[str, Any]
    ) -> None:
        now = datetime.now(UTC)
        ends_at = now + self.lifetime if action == "trigger" else now
        await self.resend(session, [alert], ends_at)

    async def resend(
        self, session: aiohttp.ClientSession, alerts: list[dict[str, Any]], ends_at: datetime
    ) -> None:
        body = json.dumps([to_alertmanager(alert, ends_at) for alert in alerts]).encode()
        await post_json(session, self.name, self.url, body)

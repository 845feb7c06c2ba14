"""PagerDuty Events API v2: trigger and resolve by dedup_key (so a repeat never pages twice)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from sla_monitor.notifiers import post_json

_SEVERITIES = {"critical", "error", "warning", "info"}


class PagerDutyNotifier:
    name = "pagerduty"

    def __init__(self, url: str, routing_key: str) -> None:
        self.url = url
        self._routing_key = routing_key

    async def deliver(
        self, session: aiohttp.ClientSession, action: str, alert: dict[str, Any]
    ) -> None:
        labels = alert["labels"]
        event: dict[str, Any] = {
            "routing_key": self._routing_key,
            "event_action": action,
            "dedup_key": alert["dedup_key"],
        }
        if action == "trigger":
            severity = labels.get("severity", "error")
            event["payload"] = {
                "summary": alert["annotations"]["summary"][:1024],
                "source": f"sla-monitor/{labels.get('source', '')}",
                "severity": severity if severity in _SEVERITIES else "error",
                "component": labels.get("queue", ""),
                "group": labels.get("team", ""),
                "class": labels.get("clock", ""),
                "custom_details": {**labels, **alert["annotations"]},
            }
            if url := alert["annotations"].get("ticket_url"):
                event["links"] = [{"href": url, "text": f"Ticket {labels.get('ticket_id')}"}]
        await post_json(
            session, self.name, self.url, json.dumps(event).encode(), secrets=(self._routing_key,)
        )

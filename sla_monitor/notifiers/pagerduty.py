"""PagerDuty Events API v2: trigger and resolve by dedup_key (so a repeat never pages twice).

A first start's backlog summary and a storm digest are triggers of their own key, linking to
the helpdesk (a backlog summary: to the board and the API's listing when ``http.public_url``
is set); no resolve ever follows them (someone resolves the incident)."""

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
            annotations = alert["annotations"]
            if board := annotations.get("board_url"):
                event["links"] = [{"href": board, "text": "Board"}]
                if api := annotations.get("api_url"):
                    event["links"].append({"href": api, "text": "API listing"})
            elif url := annotations.get("ticket_url"):
                ticket = labels.get("ticket_id")
                text = f"Ticket {ticket}" if ticket else "Helpdesk"
                event["links"] = [{"href": url, "text": text}]
        await post_json(
            session, self.name, self.url, json.dumps(event).encode(), secrets=(self._routing_key,)
        )

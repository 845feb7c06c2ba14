"""Slack incoming webhook: one message when an escalation triggers, one when it resolves; a
backlog summary or a storm digest is one message linking to the helpdesk (a backlog summary:
to the board and the API's listing when ``http.public_url`` is set)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from sla_monitor.notifiers import post_json


class SlackNotifier:
    name = "slack"

    def __init__(self, webhook_url: str) -> None:
        self._url = webhook_url

    async def deliver(
        self, session: aiohttp.ClientSession, action: str, alert: dict[str, Any]
    ) -> None:
        annotations = alert["annotations"]
        icon = ":rotating_light:" if action == "trigger" else ":white_check_mark:"
        state = "" if action == "trigger" else "Resolved: "
        link = annotations.get("ticket_url")
        if annotations.get("board_url"):
            opens = "open board"
        else:
            opens = "open ticket" if alert["labels"].get("ticket_id") else "open helpdesk"
        text = f"{icon} {state}{annotations['summary']}" + (f" <{link}|{opens}>" if link else "")
        if api := annotations.get("api_url"):
            text += f" \u00b7 <{api}|API listing>"
        await post_json(session, self.name, self._url, json.dumps({"text": text}).encode())

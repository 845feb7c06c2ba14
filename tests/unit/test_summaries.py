"""How a backlog summary and a storm digest read, and what Alertmanager is sent for them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from sla_monitor.escalation_planner import EscalationPlanner, backlog_alerts, helpdesk_url
from sla_monitor.notifiers import pagerduty, slack
from sla_monitor.notifiers.alertmanager import to_alertmanager
from sla_monitor.notifiers.pagerduty import PagerDutyNotifier
from sla_monitor.notifiers.slack import SlackNotifier
from sla_monitor.outbox import DIGEST_LISTED, digest_alert, digest_key
from sla_monitor.records import BacklogSummary

START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
TICKET_URL = "https://desk.example/t/{ticket_id}"
BOARD = "https://sla.example.com/"


def count_rows(*levels: tuple[str, str]) -> list[dict[str, Any]]:
    """A count row per (level, alertname), on one channel."""
    return [
        {
            "level": level,
            "channel": "slack",
            "alertname": alertname,
            "severity": None,
            "team": None,
            "tickets": 3,
            "by_clock": {"first_response": 3},
        }
        for level, alertname in levels
    ]


async def sent_by(
    notifier: SlackNotifier | PagerDutyNotifier,
    alert: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    """The JSON body ``notifier`` posts for a trigger of ``alert``."""
    bodies: list[bytes] = []

    async def post_json(session: Any, name: str, url: str, body: bytes, *_: Any, **__: Any) -> None:
        bodies.append(body)

    monkeypatch.setattr(slack, "post_json", post_json)
    monkeypatch.setattr(pagerduty, "post_json", post_json)
    await notifier.deliver(None, "trigger", alert)  # type: ignore[arg-type]
    [body] = bodies
    return dict(json.loads(body))


def test_one_summary_per_level_and_channel_with_a_stable_key_and_counts() -> None:
    summary = BacklogSummary("hd", START, helpdesk_url("https://desk.example/t/{ticket_id}"))
    counts = [
        {
            "level": "oncall",
            "channel": channel,
            "alertname": "SLABreached",
            "severity": "critical",
            "team": "support",
            "tickets": 1234,
            "by_clock": {"resolution": 134, "first_response": 1100},
        }
        for channel in ("alertmanager", "slack")
    ]
    alerts = backlog_alerts(summary, counts)
    assert [(key, channel) for key, channel, _ in alerts] == [
        ("hd/backlog/oncall/2026-03-02T10:00:00+00:00", "alertmanager"),
        ("hd/backlog/oncall/2026-03-02T10:00:00+00:00", "slack"),
    ]
    alert = alerts[0][2]
    assert alert["annotations"]["summary"] == (
        "1,234 tickets were already breached when monitoring started: "
        "1,100 first_response, 134 resolution"
    )
    sent = to_alertmanager(alert, START)
    assert sent["annotations"]["count"] == "1234"
    assert sent["labels"]["alertname"] == "SLABacklog" and "ticket_id" not in sent["labels"]
    assert sent["generatorURL"] == "https://desk.example/"


def test_a_digest_names_a_bounded_number_of_tickets_and_counts_the_rest() -> None:
    folded = [
        {
            "labels": {"ticket_id": str(n), "level": "oncall", "clock": "resolution"},
            "annotations": {"ticket_url": f"https://desk.example/t/{n}"},
        }
        for n in range(DIGEST_LISTED + 17)
    ]
    key = digest_key("slack", START)
    assert key == "slack/digest/2026-03-02T10:00Z"
    alert = digest_alert({"dedup_key": key, "labels": {"level": "digest"}}, folded)
    text = alert["annotations"]["summary"]
    assert text.startswith("37 more escalations in this minute: 0 (oncall, resolution), 1 (")
    assert text.endswith(" and 17 more")
    assert f"{DIGEST_LISTED - 1} (oncall" in text and f" {DIGEST_LISTED} (" not in text
    assert alert["annotations"]["count"] == "37"
    assert alert["annotations"]["ticket_url"] == "https://desk.example/"


def test_with_a_public_url_a_summary_links_the_board_and_names_the_api_listing() -> None:
    planner = EscalationPlanner("hd", (), TICKET_URL, public_url=BOARD)
    planner.begin_backlog(START)
    summary = planner.backlog_summary()
    assert summary is not None
    rows = count_rows(
        ("team", "SLAAtRisk"),
        ("oncall", "SLABreached"),
        ("late", "SLAOverdue"),
        ("parked", "SLAPauseLimit"),
    )
    annotations = {key: alert["annotations"] for key, _, alert in backlog_alerts(summary, rows)}
    api = f"{BOARD}api/v1/tickets?state="
    assert {key.split("/")[2]: a["api_url"] for key, a in annotations.items()} == {
        "team": f"{api}at_risk,breached",
        "oncall": f"{api}breached",
        "late": f"{api}breached",
        "parked": f"{api}paused",
    }
    for a in annotations.values():
        assert a["ticket_url"] == a["board_url"] == BOARD
    alert = next(alert for _, _, alert in backlog_alerts(summary, rows[1:2]))
    sent = to_alertmanager(alert, START)  # a webhook's body carries the same annotations
    assert sent["generatorURL"] == BOARD
    assert sent["annotations"]["api_url"] == f"{api}breached"


def test_without_a_public_url_a_summary_links_the_helpdesk_as_before() -> None:
    planner = EscalationPlanner("hd", (), TICKET_URL)
    planner.begin_backlog(START)
    summary = planner.backlog_summary()
    assert summary is not None
    [(_, _, alert)] = backlog_alerts(summary, count_rows(("oncall", "SLABreached")))
    assert alert["annotations"]["ticket_url"] == "https://desk.example/"
    assert "board_url" not in alert["annotations"] and "api_url" not in alert["annotations"]


@pytest.mark.parametrize("public_url", [BOARD, None])
async def test_slack_and_pagerduty_show_the_board_and_the_api_listing(
    monkeypatch: pytest.MonkeyPatch, public_url: str | None
) -> None:
    summary = BacklogSummary("hd", START, helpdesk_url(TICKET_URL), public_url)
    [(_, _, alert)] = backlog_alerts(summary, count_rows(("oncall", "SLABreached")))
    text = (await sent_by(SlackNotifier("https://hooks.example/x"), alert, monkeypatch))["text"]
    event = await sent_by(PagerDutyNotifier("https://pd.example/", "k"), alert, monkeypatch)
    api = f"{BOARD}api/v1/tickets?state=breached"
    if public_url:
        assert text.endswith(f" <{BOARD}|open board> \u00b7 <{api}|API listing>")
        assert event["links"] == [
            {"href": BOARD, "text": "Board"},
            {"href": api, "text": "API listing"},
        ]
    else:
        assert text.endswith(" <https://desk.example/|open helpdesk>")
        assert event["links"] == [{"href": "https://desk.example/", "text": "Helpdesk"}]

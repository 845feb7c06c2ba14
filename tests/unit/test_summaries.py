"""How a backlog summary and a storm digest read, and what Alertmanager is sent for them."""

from __future__ import annotations

from datetime import UTC, datetime

from sla_monitor.escalation_planner import backlog_alerts, helpdesk_url
from sla_monitor.notifiers.alertmanager import to_alertmanager
from sla_monitor.outbox import DIGEST_LISTED, digest_alert, digest_key
from sla_monitor.records import BacklogSummary

START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


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

"""`sla-monitor demo`: an embedded helpdesk whose tickets keep arriving, getting answered and
resolved, with short SLA targets so every state shows up within minutes, and customers at risk
of churning (the neglected ones of sla_monitor.sources.sql.demo) counted over the last half
hour every 15 seconds."""

from __future__ import annotations

from pathlib import Path

from sla_monitor.config import PolicySettings, Settings
from sla_monitor.sources.sql.demo import TicketGenerator, load_reference_schema

__all__ = ["TicketGenerator", "demo_settings", "load_reference_schema"]

# The example templates of the checkout (config/templates), next to the package.
DEMO_TEMPLATES = Path(__file__).resolve().parents[1] / "config" / "templates"


def demo_settings(base: Settings, data_dir: Path) -> Settings:
    """The given settings on the embedded database, with minutes-long demo targets."""
    policies = {
        "urgent": PolicySettings(
            priorities=["urgent"], first_response=60, resolution=600, update_interval=60
        ),
        "default": PolicySettings(first_response=180, resolution=1200, update_interval=120),
    }
    updates = base.updates.model_copy(
        update={
            "enabled": True,
            "mode": "post",
            "min_ticket_age": 60.0,
            "quiet_hours": None,
            "templates_dir": DEMO_TEMPLATES,
        }
    )
    return base.model_copy(
        update={
            "database": base.database.model_copy(
                update={"dsn": None, "embedded_data_dir": data_dir}
            ),
            "daemon": base.daemon.model_copy(update={"poll_interval": 2.0}),
            "policies": policies,
            "updates": updates,
            "churn": base.churn.model_copy(update={"window": 1800.0, "interval": 15.0}),
        }
    )

"""sla-monitor: measures and enforces a helpdesk's first-response, resolution and update SLAs."""

__version__ = "0.1.0"

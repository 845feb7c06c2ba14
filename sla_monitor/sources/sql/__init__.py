"""The generic SQL source: configurable queries returning documented columns."""

from sla_monitor.sources.sql.source import REFERENCE_SCHEMA, SqlSource

__all__ = ["REFERENCE_SCHEMA", "SqlSource"]

"""The generic SQL source's default queries (default_queries.sql), as configuration uses them."""

from sla_monitor.sql import load_queries

DEFAULT_QUERIES = load_queries("sla_monitor.sources.sql", "default_queries.sql")
CHANGED_TICKETS_QUERY = DEFAULT_QUERIES["changed_tickets"]
OPEN_TICKETS_QUERY = DEFAULT_QUERIES["open_tickets"]
EVENTS_QUERY = DEFAULT_QUERIES["events"]

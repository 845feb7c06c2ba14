"""Bad-row reasons come from one enum: every member is exported from the start, and each stays
the same plain string in labels, logs and messages."""

from __future__ import annotations

import json

from sla_monitor.engine import BadRowReason, PolicySet
from sla_monitor.engine.clocks import TicketError
from sla_monitor.metrics import BAD_ROW_REASONS, Metrics
from sla_monitor.tracker import Tracker

# The label values dashboards and alert rules already use.
KNOWN = {
    "null_timestamp",
    "naive_timestamp",
    "bad_timestamp",
    "event_before_creation",
    "unknown_status",
    "unknown_priority",
    "unknown_event_kind",
    "null_queue",
    "null_status",
    "null_priority",
    "created_in_future",
    "infinite_timestamp",
    "timestamp_out_of_range",
    "evaluation_failed",
    "bad_attributes",
}


def test_metrics_export_every_reason_at_zero() -> None:
    metrics = Metrics(Tracker(PolicySet()))
    exported = {
        sample.labels["reason"]: sample.value
        for family in metrics.registry.collect()
        if family.name == "sla_monitor_bad_rows"
        for sample in family.samples
        if sample.name == "sla_monitor_bad_rows_total"
    }
    assert exported == dict.fromkeys(BadRowReason, 0.0)
    assert set(exported) == KNOWN
    assert tuple(BadRowReason) == BAD_ROW_REASONS


def test_a_reason_reads_as_its_plain_string() -> None:
    error = TicketError(BadRowReason.NULL_QUEUE, "queue is NULL")
    assert str(error) == "null_queue: queue is NULL"
    assert json.dumps({"reason": error.reason}) == '{"reason": "null_queue"}'

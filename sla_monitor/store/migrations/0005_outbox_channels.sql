-- One sender per channel claims that channel's oldest pending row: without the channel in the
-- index, every claim of a healthy channel would walk past a dead channel's backlog.
CREATE INDEX outbox_pending_channel ON {schema}.outbox (channel, id) WHERE delivered_at IS NULL;

-- A row the channel refused for good (HTTP 400/401/403/404/410/422: a configuration problem)
-- is parked: retried only at the maximum backoff or after a configuration reload.
ALTER TABLE {schema}.outbox ADD COLUMN parked_at timestamptz;

-- A progress update no longer owed when its turn came (the ticket was resolved meanwhile) is
-- cancelled: it leaves the queue (delivered_at is set, so nothing waits for it) unsent.
ALTER TABLE {schema}.outbox ADD COLUMN cancelled_at timestamptz;

-- An escalation already active when monitoring first started (a backlog) is recorded without
-- its own trigger: one summary per level and channel tells of all of them, and no resolve is
-- ever sent for a trigger never sent.
ALTER TABLE {schema}.escalations ADD COLUMN backlog boolean NOT NULL DEFAULT false;

-- A trigger folded into a channel's digest of one minute (the storm guard): marked delivered,
-- and named by the digest row that tells of it.
ALTER TABLE {schema}.outbox ADD COLUMN digest_key text;
CREATE INDEX outbox_digested ON {schema}.outbox (digest_key) WHERE digest_key IS NOT NULL;

-- Retention deletes the oldest rows in small batches: each batch finds them by index.
CREATE INDEX outbox_delivered_at ON {schema}.outbox (delivered_at) WHERE delivered_at IS NOT NULL;
CREATE INDEX breaches_breached_at ON {schema}.breaches (breached_at);
CREATE INDEX escalations_resolved_at ON {schema}.escalations (resolved_at)
    WHERE resolved_at IS NOT NULL;
CREATE INDEX customer_updates_owed_at ON {schema}.customer_updates (owed_at);

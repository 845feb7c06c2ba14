-- Progress updates owed to customers: one per ticket and update window, delivered through
-- the outbox (action 'update') with the row's idempotency key.
CREATE TABLE {schema}.customer_updates (
    idempotency_key text PRIMARY KEY,   -- source/ticket/update/<window start>
    source          text        NOT NULL,
    ticket_id       text        NOT NULL,
    window_start    timestamptz NOT NULL,
    language        text        NOT NULL,
    body            text        NOT NULL,
    owed_at         timestamptz NOT NULL  -- the evaluation instant that created it
);
CREATE INDEX customer_updates_per_day ON {schema}.customer_updates (source, ticket_id, owed_at);

ALTER TABLE {schema}.outbox DROP CONSTRAINT outbox_action_check;
ALTER TABLE {schema}.outbox ADD CONSTRAINT outbox_action_check
    CHECK (action IN ('trigger', 'resolve', 'update'));

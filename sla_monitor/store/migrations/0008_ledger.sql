-- The SLA ledger (sla_monitor.engine.ledger): every transition of every clock window of a
-- ticket, append-only and once: its key is the transition's identity, so deriving it again
-- (a later poll, a restart re-reading the same tickets) inserts nothing new. No subject is
-- kept: a row says what happened to a clock, never what the ticket is about.
CREATE TABLE {schema}.ledger (
    source          text             NOT NULL,
    ticket_id       text             NOT NULL,
    clock           text             NOT NULL,
    window_key      text             NOT NULL,
    kind            text             NOT NULL,
    at              timestamptz      NOT NULL,
    policy          text             NOT NULL,  -- in force at `at` (policy_changed: the new)
    calendar        text             NOT NULL,
    priority        text             NOT NULL,  -- the ticket's at `at`
    elapsed_seconds double precision NOT NULL,  -- business seconds counted by `at`
    previous_policy text,                       -- policy_changed only
    queue           text             NOT NULL,
    customer        text,
    organization    text,
    recorded_at     timestamptz      NOT NULL DEFAULT now(),
    -- Also the index of one ticket's ledger (explain, GET /api/v1/tickets/{id}).
    PRIMARY KEY (source, ticket_id, clock, window_key, kind, at)
);
-- Retention deletes the oldest entries in batches.
CREATE INDEX ledger_at ON {schema}.ledger (at);

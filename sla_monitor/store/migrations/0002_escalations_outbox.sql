-- Escalations and the transactional outbox that delivers them.

-- One row per (source, ticket, clock, level): recorded in the same transaction as the
-- evaluation that calls for it, so a restart never escalates twice. resolved_at is set when
-- the clock stops or the level no longer applies.
CREATE TABLE {schema}.escalations (
    dedup_key    text PRIMARY KEY,
    source       text        NOT NULL,
    ticket_id    text        NOT NULL,
    clock        text        NOT NULL,
    level        text        NOT NULL,
    channels     text[]      NOT NULL,
    alert        jsonb       NOT NULL,  -- labels and annotations, as the channels are sent
    triggered_at timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz
);
CREATE INDEX escalations_active ON {schema}.escalations (source, ticket_id)
    WHERE resolved_at IS NULL;

-- What the senders must deliver: one row per escalation, action and channel.
CREATE TABLE {schema}.outbox (
    id              bigserial PRIMARY KEY,
    dedup_key       text        NOT NULL,
    action          text        NOT NULL CHECK (action IN ('trigger', 'resolve')),
    channel         text        NOT NULL,
    payload         jsonb       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    attempts        integer     NOT NULL DEFAULT 0,
    delivered_at    timestamptz,
    last_error      text,
    UNIQUE (dedup_key, action, channel)
);
CREATE INDEX outbox_due ON {schema}.outbox (next_attempt_at) WHERE delivered_at IS NULL;

-- The daemon's own state. {schema} is replaced by the configured schema name, which
-- configuration validation restricts to [a-z_][a-z0-9_]*.

-- Where incremental polling resumes: the newest change time seen per source.
CREATE TABLE {schema}.watermarks (
    source     text PRIMARY KEY,
    changed_at timestamptz NOT NULL,
    saved_at   timestamptz NOT NULL DEFAULT now()
);

-- Every clock that crossed its target, once: a breach is never withdrawn or counted twice.
CREATE TABLE {schema}.breaches (
    source      text        NOT NULL,
    ticket_id   text        NOT NULL,
    clock       text        NOT NULL,
    window_key  text        NOT NULL,
    breached_at timestamptz NOT NULL,
    priority    text        NOT NULL,
    queue       text        NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, ticket_id, clock, window_key)
);

-- Every clock that stopped (met or breached), once.
CREATE TABLE {schema}.completions (
    source          text             NOT NULL,
    ticket_id       text             NOT NULL,
    clock           text             NOT NULL,
    window_key      text             NOT NULL,
    stopped_at      timestamptz      NOT NULL,
    met             boolean          NOT NULL,
    elapsed_seconds double precision NOT NULL,
    priority        text             NOT NULL,
    queue           text             NOT NULL,
    recorded_at     timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (source, ticket_id, clock, window_key)
);
CREATE INDEX completions_stopped_at ON {schema}.completions (stopped_at);

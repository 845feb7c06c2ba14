-- The state store's queries (sla_monitor.store.StateStore), loaded by sla_monitor.sql.
-- {schema} is replaced by the configured schema name (a validated identifier).

-- name: create_schema
-- Only when missing: CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the
-- schema exists, which a role that merely owns its schema (deploy/postgresql/roles.sql) lacks.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = '{schema}') THEN
        CREATE SCHEMA "{schema}";
    END IF;
END
$$

-- name: create_versions
CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
    version    integer PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)

-- name: migration_lock
SELECT pg_advisory_xact_lock($1)

-- name: applied_versions
SELECT version FROM {schema}.schema_migrations

-- name: versions_table
SELECT to_regclass('{schema}.schema_migrations') IS NOT NULL

-- name: record_version
INSERT INTO {schema}.schema_migrations (version, name) VALUES ($1, $2)

-- name: load_watermark
SELECT changed_at FROM {schema}.watermarks WHERE source = $1

-- name: save_watermark
INSERT INTO {schema}.watermarks (source, changed_at) VALUES ($1, $2)
ON CONFLICT (source) DO UPDATE SET changed_at = EXCLUDED.changed_at, saved_at = now()

-- name: record_breaches
INSERT INTO {schema}.breaches
    (source, ticket_id, clock, window_key, breached_at, priority, queue, customer, organization,
     policy)
SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[],
                         $7::text[], $8::text[], $9::text[], $10::text[])
ON CONFLICT DO NOTHING
RETURNING ticket_id, clock, window_key, priority, queue

-- name: record_completions
INSERT INTO {schema}.completions
    (source, ticket_id, clock, window_key, stopped_at, met, elapsed_seconds, priority, queue,
     customer, organization, policy)
SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::boolean[],
                         $7::float8[], $8::text[], $9::text[], $10::text[], $11::text[],
                         $12::text[])
ON CONFLICT DO NOTHING
RETURNING ticket_id, clock, window_key, met, elapsed_seconds, priority, queue

-- name: resolve_escalations
-- Driven from the tickets (a nested loop over the active-escalations index) and with the
-- still-active keys hashed: `ticket_id = ANY($2) AND dedup_key <> ALL($3)` compared every row
-- with both arrays, and a plan cached while the table was empty scanned all of it, which made
-- a first sync of a large backlog quadratic (minutes per chunk at 140 k escalations).
WITH resolved AS (
    UPDATE {schema}.escalations e SET resolved_at = now()
    FROM unnest($2::text[]) AS t (ticket_id)
    WHERE e.source = $1 AND e.ticket_id = t.ticket_id AND e.resolved_at IS NULL
      AND e.dedup_key NOT IN (SELECT unnest($3::text[]))
    RETURNING e.dedup_key, e.channels, e.alert, e.backlog
)
-- A backlog escalation's trigger was never sent (a summary told of it): nor is its resolve.
INSERT INTO {schema}.outbox (dedup_key, action, channel, payload)
SELECT dedup_key, 'resolve', unnest(channels), alert FROM resolved WHERE NOT backlog
ON CONFLICT DO NOTHING
RETURNING dedup_key, action, channel, payload->'labels'->>'level' AS level

-- name: trigger_escalations
-- $8: a first start's backlog, recorded without a trigger each (a summary tells of them).
WITH inserted AS (
    INSERT INTO {schema}.escalations
        (dedup_key, source, ticket_id, clock, level, channels, alert, backlog)
    SELECT key, $1, ticket, clock, level, string_to_array(channels, ','), alert, $8
    FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::jsonb[])
        AS wanted (key, ticket, clock, level, channels, alert)
    ON CONFLICT (dedup_key) DO NOTHING
    RETURNING dedup_key, channels, alert
)
INSERT INTO {schema}.outbox (dedup_key, action, channel, payload)
SELECT dedup_key, 'trigger', unnest(channels), alert FROM inserted WHERE NOT $8
ON CONFLICT DO NOTHING
RETURNING dedup_key, action, channel, payload->'labels'->>'level' AS level

-- name: backlog_counts
-- Per level and channel, the backlog escalations still active: distinct tickets, and
-- escalations per clock.
WITH backlog AS (
    SELECT e.level, channel, e.clock, e.ticket_id, e.alert
    FROM {schema}.escalations e, unnest(e.channels) AS channel
    WHERE e.source = $1 AND e.backlog AND e.resolved_at IS NULL
)
SELECT level, channel, count(DISTINCT ticket_id) AS tickets,
       min(alert->'labels'->>'alertname') AS alertname,
       min(alert->'labels'->>'severity') AS severity,
       min(alert->'labels'->>'team') AS team,
       (SELECT jsonb_object_agg(clock, n)::text FROM (
            SELECT b.clock, count(*) AS n FROM backlog b
            WHERE b.level = g.level AND b.channel = g.channel GROUP BY b.clock) AS c
       ) AS by_clock
FROM backlog g
GROUP BY level, channel
ORDER BY level, channel

-- name: queue_summaries
INSERT INTO {schema}.outbox (dedup_key, action, channel, payload)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[])
ON CONFLICT DO NOTHING
RETURNING dedup_key, action, channel, payload->'labels'->>'level' AS level

-- name: escalated_tickets
SELECT DISTINCT ticket_id FROM {schema}.escalations WHERE source = $1 AND resolved_at IS NULL

-- name: record_updates
-- $10..$14: each update's queue, priority, policy, customer and organization (for reports).
WITH wanted AS (
    SELECT * FROM unnest($2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::text[],
                         $7::timestamptz[], $10::text[], $11::text[], $12::text[], $13::text[],
                         $14::text[])
        AS w (key, ticket, window_start, language, body, owed_at, queue, priority, policy,
              customer, organization)
), allowed AS (
    -- The cap: no more than $8 updates per ticket in the 24 hours before this one.
    SELECT w.* FROM wanted w
    WHERE (SELECT count(*) FROM {schema}.customer_updates u
           WHERE u.source = $1 AND u.ticket_id = w.ticket
             AND u.owed_at > w.owed_at - interval '24 hours') < $8
), inserted AS (
    INSERT INTO {schema}.customer_updates
        (idempotency_key, source, ticket_id, window_start, language, body, owed_at, queue,
         priority, policy, customer, organization)
    SELECT key, $1, ticket, window_start, language, body, owed_at, queue, priority, policy,
           customer, organization
    FROM allowed
    ON CONFLICT DO NOTHING
    RETURNING idempotency_key, ticket_id, body, window_start
)
INSERT INTO {schema}.outbox (dedup_key, action, channel, payload)
SELECT idempotency_key, 'update', $9,
       jsonb_build_object('dedup_key', idempotency_key, 'ticket_id', ticket_id, 'body', body,
                          'window_start', window_start)
FROM inserted
ON CONFLICT DO NOTHING
RETURNING dedup_key, action, channel, NULL::text AS level

-- name: ledger_incoming
-- The staging table a recording's ledger rows are copied into (binary COPY: far cheaper than
-- unnest arrays for many rows), dropped with the transaction, committed or rolled back: it
-- exists only within the recording's transaction, so nothing in it outlives that.
CREATE TEMPORARY TABLE ledger_incoming (
    ticket_id text, clock text, window_key text, kind text, at timestamptz, policy text,
    calendar text, priority text, elapsed_seconds float8, previous_policy text, queue text,
    customer text, organization text
) ON COMMIT DROP

-- name: record_ledger
-- Append-only: a transition already recorded (the same identity) is left as it is. Reads the
-- rows copied into ledger_incoming in the same transaction.
INSERT INTO {schema}.ledger
    (source, ticket_id, clock, window_key, kind, at, policy, calendar, priority,
     elapsed_seconds, previous_policy, queue, customer, organization)
SELECT $1, ticket_id, clock, window_key, kind, at, policy, calendar, priority,
       elapsed_seconds, previous_policy, queue, customer, organization
FROM pg_temp.ledger_incoming
ON CONFLICT DO NOTHING

-- name: record_ledger_columns
-- The same append from column arrays (unnest), for a role without the TEMPORARY privilege
-- on its database, which ledger_incoming needs (PUBLIC has it unless revoked).
INSERT INTO {schema}.ledger
    (source, ticket_id, clock, window_key, kind, at, policy, calendar, priority,
     elapsed_seconds, previous_policy, queue, customer, organization)
SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
                         $7::text[], $8::text[], $9::text[], $10::float8[], $11::text[],
                         $12::text[], $13::text[], $14::text[])
ON CONFLICT DO NOTHING

-- name: ticket_ledger
-- One ticket's ledger in the order things happened: by instant, then as the engine orders
-- the entries of one instant ($3: the kinds in that order).
SELECT clock, window_key, kind, at, policy, calendar, priority, elapsed_seconds,
       previous_policy
FROM {schema}.ledger
WHERE source = $1 AND ticket_id = $2
ORDER BY at, array_position($4::text[], clock), window_key COLLATE "C",
         array_position($3::text[], kind)

-- Retention's deletes (sla_monitor.retention), loaded by sla_monitor.sql. {schema} is replaced
-- by the configured schema name (a validated identifier). Each deletes at most $2 rows older
-- than $1 seconds, found by an index of the age's column (migrations 0006, 0008), in a statement of
-- its own: a short transaction that never holds up the poll loop's.

-- name: outbox
-- Delivered (or cancelled, or folded into a digest) rows; a folded row stays while its digest
-- waits, which tells of it when sent.
DELETE FROM {schema}.outbox WHERE ctid = ANY(ARRAY(
    SELECT o.ctid FROM {schema}.outbox o
    WHERE o.delivered_at < now() - make_interval(secs => $1)
      AND (o.digest_key IS NULL OR NOT EXISTS (
          SELECT 1 FROM {schema}.outbox d
          WHERE d.dedup_key = o.digest_key AND d.delivered_at IS NULL))
    LIMIT $2))

-- name: breaches
DELETE FROM {schema}.breaches WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM {schema}.breaches
    WHERE breached_at < now() - make_interval(secs => $1) LIMIT $2))

-- name: completions
DELETE FROM {schema}.completions WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM {schema}.completions
    WHERE stopped_at < now() - make_interval(secs => $1) LIMIT $2))

-- name: customer_updates
DELETE FROM {schema}.customer_updates WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM {schema}.customer_updates
    WHERE owed_at < now() - make_interval(secs => $1) LIMIT $2))

-- name: escalations
-- Resolved ones only: an active escalation is kept however old.
DELETE FROM {schema}.escalations WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM {schema}.escalations
    WHERE resolved_at < now() - make_interval(secs => $1) LIMIT $2))

-- name: ledger
DELETE FROM {schema}.ledger WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM {schema}.ledger
    WHERE at < now() - make_interval(secs => $1) LIMIT $2))

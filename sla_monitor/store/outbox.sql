-- The outbox sender's queries (sla_monitor.store.outbox.OutboxStore), loaded by sla_monitor.sql.
-- {schema} is replaced by the configured schema name (a validated identifier).
--
-- The four claims differ only in which rows they consider and in their order. Each claims one
-- row with FOR UPDATE SKIP LOCKED, and never a row while an earlier row of the same key and
-- channel is undelivered (a resolve never overtakes its trigger).

-- name: claim_any
-- Any channel's oldest due row (deliver_one without a channel).
SELECT o.id, o.dedup_key, o.action, o.channel, o.payload, o.attempts
FROM {schema}.outbox o
WHERE o.delivered_at IS NULL AND o.next_attempt_at <= now()
  AND NOT EXISTS (
      SELECT 1 FROM {schema}.outbox earlier
      WHERE earlier.dedup_key = o.dedup_key AND earlier.channel = o.channel
        AND earlier.id < o.id AND earlier.delivered_at IS NULL)
ORDER BY o.id
LIMIT 1
FOR UPDATE OF o SKIP LOCKED

-- name: claim_channel
-- The oldest due row of channel $1.
SELECT o.id, o.dedup_key, o.action, o.channel, o.payload, o.attempts
FROM {schema}.outbox o
WHERE o.delivered_at IS NULL AND o.channel = $1 AND o.next_attempt_at <= now()
  AND NOT EXISTS (
      SELECT 1 FROM {schema}.outbox earlier
      WHERE earlier.dedup_key = o.dedup_key AND earlier.channel = o.channel
        AND earlier.id < o.id AND earlier.delivered_at IS NULL)
ORDER BY o.id
LIMIT 1
FOR UPDATE OF o SKIP LOCKED

-- name: claim_probe
-- Channel $1's probe: the row due soonest, due yet or not (a parked row, or a storm digest
-- whose minute is not over, only once due).
SELECT o.id, o.dedup_key, o.action, o.channel, o.payload, o.attempts
FROM {schema}.outbox o
WHERE o.delivered_at IS NULL AND o.channel = $1
  AND (o.parked_at IS NULL OR o.next_attempt_at <= now())
  AND (o.payload->>'kind' IS DISTINCT FROM 'digest' OR o.next_attempt_at <= now())
  AND NOT EXISTS (
      SELECT 1 FROM {schema}.outbox earlier
      WHERE earlier.dedup_key = o.dedup_key AND earlier.channel = o.channel
        AND earlier.id < o.id AND earlier.delivered_at IS NULL)
ORDER BY o.next_attempt_at, o.id
LIMIT 1
FOR UPDATE OF o SKIP LOCKED

-- name: claim_orphan
-- The oldest due row of a channel no longer configured (not in $1).
SELECT o.id, o.dedup_key, o.action, o.channel, o.payload, o.attempts
FROM {schema}.outbox o
WHERE o.delivered_at IS NULL AND o.channel <> ALL($1::text[]) AND o.next_attempt_at <= now()
  AND NOT EXISTS (
      SELECT 1 FROM {schema}.outbox earlier
      WHERE earlier.dedup_key = o.dedup_key AND earlier.channel = o.channel
        AND earlier.id < o.id AND earlier.delivered_at IS NULL)
ORDER BY o.id
LIMIT 1
FOR UPDATE OF o SKIP LOCKED

-- name: delivered
UPDATE {schema}.outbox SET delivered_at = now(), attempts = attempts + 1, last_error = NULL,
    parked_at = NULL
WHERE id = $1

-- name: retry
-- $2 the error, $3 seconds until the next attempt, $4 park the row (a refusal).
UPDATE {schema}.outbox SET attempts = attempts + 1, last_error = $2,
    next_attempt_at = now() + make_interval(secs => $3),
    parked_at = CASE WHEN $4 THEN now() END
WHERE id = $1

-- name: defer
UPDATE {schema}.outbox SET next_attempt_at = now() + make_interval(secs => $2) WHERE id = $1

-- name: cancel
-- $2 the reason, kept as the row's last_error.
UPDATE {schema}.outbox SET delivered_at = now(), cancelled_at = now(), last_error = $2
WHERE id = $1

-- name: recovered
-- A channel that answers again: its backlog is due now, whatever each row's backoff (but a
-- storm digest not before its minute is over).
UPDATE {schema}.outbox SET next_attempt_at = now()
WHERE channel = $1 AND delivered_at IS NULL AND parked_at IS NULL AND next_attempt_at > now()
  AND payload->>'kind' IS DISTINCT FROM 'digest'

-- name: retry_parked
UPDATE {schema}.outbox SET next_attempt_at = now(), parked_at = NULL
WHERE delivered_at IS NULL AND parked_at IS NOT NULL AND ($1::text IS NULL OR channel = $1)

-- name: backlog
SELECT count(*) AS pending, extract(epoch FROM now() - min(created_at)) AS oldest
FROM {schema}.outbox WHERE delivered_at IS NULL

-- name: next_due
-- Only rows not yet due: a due row that cannot be claimed (it waits for an earlier row of its
-- key, or another sender holds it) is looked at again on the next tick, not in a busy loop.
SELECT extract(epoch FROM min(next_attempt_at) - now()) FROM {schema}.outbox
WHERE delivered_at IS NULL AND channel = $1 AND next_attempt_at > now()

-- name: active_for
SELECT alert FROM {schema}.escalations
WHERE resolved_at IS NULL AND NOT backlog AND $1 = ANY(channels) ORDER BY triggered_at

-- name: digest
-- The storm guard: row $1 goes out in the digest $2 of its channel and minute instead (it is
-- delivered by that digest, due at $4, whose alert is built when it is sent). One transaction
-- with the claim: a row is digested exactly once, into a digest of a deterministic key.
WITH folded AS (
    UPDATE {schema}.outbox SET delivered_at = now(), attempts = attempts + 1, digest_key = $2
    WHERE id = $1
    RETURNING channel
)
INSERT INTO {schema}.outbox (dedup_key, action, channel, payload, next_attempt_at)
SELECT $2, 'trigger', channel, $3::jsonb, $4 FROM folded
ON CONFLICT DO NOTHING

-- name: digested
-- The alerts a digest tells of, oldest first.
SELECT payload FROM {schema}.outbox WHERE digest_key = $1 ORDER BY id

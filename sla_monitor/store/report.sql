-- The report's reads (sla_monitor.store.report.ReportStore), loaded by sla_monitor.sql.
-- {schema} is replaced by the configured schema name (a validated identifier). Each reads one
-- source's rows in [$2, $3), found by the index of its time column (migrations 0001, 0006).

-- name: completions
SELECT ticket_id, clock, stopped_at, met, elapsed_seconds, priority, queue, policy,
       organization, customer
FROM {schema}.completions
WHERE source = $1 AND stopped_at >= $2 AND stopped_at < $3

-- name: breaches
SELECT ticket_id, clock, breached_at, priority, queue, policy, organization, customer
FROM {schema}.breaches
WHERE source = $1 AND breached_at >= $2 AND breached_at < $3

-- name: updates
-- Progress updates owed in [$2, $3) (by owed_at, found by the index of migration 0006), and
-- whether each was sent: its outbox row (action 'update', the same key) delivered and not
-- cancelled (migrations 0003, 0005; a cancelled row is marked delivered too). Rows recorded
-- before migration 0010 have NULL groupings. An outbox row that retention already deleted
-- reads as not sent.
SELECT u.ticket_id, u.owed_at,
       EXISTS (SELECT 1 FROM {schema}.outbox o
               WHERE o.dedup_key = u.idempotency_key AND o.action = 'update'
                 AND o.delivered_at IS NOT NULL AND o.cancelled_at IS NULL) AS sent,
       u.priority, u.queue, u.policy, u.organization, u.customer
FROM {schema}.customer_updates u
WHERE u.source = $1 AND u.owed_at >= $2 AND u.owed_at < $3

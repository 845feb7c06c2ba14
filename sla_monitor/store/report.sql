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

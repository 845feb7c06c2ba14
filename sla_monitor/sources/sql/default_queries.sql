-- The generic SQL source's default queries (source.kind = "sql"), over the reference schema
-- (reference_schema.sql beside this file). config.py's SourceSettings takes its defaults from
-- here; a configuration replaces any of them (see README for the columns each must return).

-- name: changed_tickets
SELECT id::text AS ticket_id, created_at, updated_at, queue, status, priority, subject,
       requester_language AS language, requester_timezone AS timezone,
       requester_email AS customer, organization, attributes
FROM helpdesk.tickets
WHERE updated_at > $1::timestamptz
ORDER BY updated_at

-- name: open_tickets
SELECT id::text AS ticket_id, created_at, updated_at, queue, status, priority, subject,
       requester_language AS language, requester_timezone AS timezone,
       requester_email AS customer, organization, attributes
FROM helpdesk.tickets
WHERE status <> ALL($1::text[])

-- name: events
SELECT ticket_id::text AS ticket_id, created_at AS at, kind, new_value AS value,
       old_value AS previous_value
FROM helpdesk.ticket_events
WHERE ticket_id = ANY($1::text[]::bigint[])
ORDER BY ticket_id, created_at, id

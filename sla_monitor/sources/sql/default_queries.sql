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
-- Ordered by the table's own columns, as the index ticket_events_ticket (ticket_id,
-- created_at, id) is: an index scan returns the rows in order, no sort. (ORDER BY ticket_id
-- alone would name the output column, the text cast, and sort every batch's events as text.)
SELECT e.ticket_id::text AS ticket_id, e.created_at AS at, e.kind, e.new_value AS value,
       e.old_value AS previous_value
FROM helpdesk.ticket_events AS e
WHERE e.ticket_id = ANY($1::text[]::bigint[])
ORDER BY e.ticket_id, e.created_at, e.id

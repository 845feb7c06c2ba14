-- The demo helpdesk's writes and reads on the reference schema (sla_monitor/sources/sql/demo.py).

-- name: open_ticket
INSERT INTO helpdesk.tickets (subject, queue, priority, status, requester_email, organization,
                              created_at)
VALUES ($1, $2, $3, 'new', $4, $5, $6)

-- name: unresolved_tickets
SELECT id, status, requester_email,
       EXISTS (SELECT 1 FROM helpdesk.ticket_events e
               WHERE e.ticket_id = t.id AND e.kind = 'public_reply') AS answered
FROM helpdesk.tickets t
WHERE status <> ALL('{resolved,closed}')

-- name: add_event
INSERT INTO helpdesk.ticket_events (ticket_id, kind, author, created_at) VALUES ($1, $2, $3, $4)

-- name: status_change_event
INSERT INTO helpdesk.ticket_events (ticket_id, kind, old_value, new_value, created_at)
VALUES ($1, 'status_change', $2, $3, $4)

-- name: set_status
UPDATE helpdesk.tickets SET status = $2 WHERE id = $1

"""Request Tracker 5: read its PostgreSQL tables (read-only), write through REST2.

The source is the generic SQL source with queries over RT's own schema:
- tickets: ``Tickets`` of type 'ticket' that are their own EffectiveId (not merged away),
  their queue's name, RT's numeric priority mapped to low (< 25) / medium (< 75) / high, the
  first requestor's language and time zone, and who the ticket is for: that requestor's e-mail
  address (customer) and Organization (a field of RT's users), and as attributes RT's own
  per-ticket ``SLA`` (``attributes.sla``) and the requestor's ``country``, when set;
- events (``Transactions``): Correspond by a requestor (or RT_System) is a customer message,
  by the user sla-monitor posts as ($2) an automatic update, by anyone else a public staff reply;
  Comment is internal; Status changes and Set Priority are status and priority changes.
RT keeps its timestamps as UTC without a zone, hence every ``AT TIME ZONE 'UTC'``.

These queries are the source's defaults (config.py applies them when source.kind = 'rt'),
composed here from the ticket columns and the priority mapping they share. Progress updates
are posted by sla_monitor.notifiers.rt, through REST2, never by writing RT's tables.
"""

from __future__ import annotations

RT_PRIORITIES = ["high", "medium", "low"]
RT_STATUSES = {
    "open": ["new", "open"],
    "paused": ["stalled"],
    "resolved": ["resolved", "rejected", "deleted"],
}

_PRIORITY = "CASE WHEN {column} >= 75 THEN 'high' WHEN {column} >= 25 THEN 'medium' ELSE 'low' END"

_TICKET_COLUMNS = f"""
SELECT t.id::text AS ticket_id,
       t.created AT TIME ZONE 'UTC' AS created_at,
       t.lastupdated AT TIME ZONE 'UTC' AS updated_at,
       q.name AS queue, t.status,
       {_PRIORITY.format(column="t.priority")} AS priority,
       t.subject, requestor.lang AS language, requestor.timezone AS timezone,
       requestor.emailaddress AS customer, requestor.organization,
       jsonb_strip_nulls(jsonb_build_object(
           'sla', NULLIF(t.sla, ''),
           'country', NULLIF(requestor.country, '')
       )) AS attributes
FROM tickets t
JOIN queues q ON q.id = t.queue
LEFT JOIN LATERAL (
    SELECT u.lang, u.timezone, u.emailaddress, u.organization, u.country
    FROM groups g
    JOIN groupmembers gm ON gm.groupid = g.id
    JOIN users u ON u.id = gm.memberid
    WHERE g.domain = 'RT::Ticket-Role' AND g.name = 'Requestor' AND g.instance = t.id
    ORDER BY gm.id
    LIMIT 1
) requestor ON true
WHERE t.type = 'ticket' AND t.id = t.effectiveid"""

RT_CHANGED_TICKETS_QUERY = (
    _TICKET_COLUMNS
    + "\n  AND t.lastupdated > ($1::timestamptz AT TIME ZONE 'UTC')\nORDER BY t.lastupdated"
)
RT_OPEN_TICKETS_QUERY = _TICKET_COLUMNS + "\n  AND t.status <> ALL($1::text[])"

RT_EVENTS_QUERY = f"""
SELECT tr.objectid::text AS ticket_id,
       tr.created AT TIME ZONE 'UTC' AS at,
       CASE
           WHEN tr.type = 'Correspond' AND creator.name = $2 THEN 'automatic_update'
           WHEN tr.type = 'Correspond' AND (tr.creator = 1 OR EXISTS (
               SELECT 1 FROM groups g JOIN groupmembers gm ON gm.groupid = g.id
               WHERE g.domain = 'RT::Ticket-Role' AND g.name = 'Requestor'
                 AND g.instance = tr.objectid AND gm.memberid = tr.creator))
               THEN 'customer_message'
           WHEN tr.type = 'Correspond' THEN 'public_reply'
           WHEN tr.type = 'Comment' THEN 'internal_note'
           WHEN tr.type = 'Status' THEN 'status_change'
           ELSE 'priority_change'
       END AS kind,
       CASE WHEN tr.type = 'Set'
            THEN {_PRIORITY.format(column="tr.newvalue::integer")}
            ELSE tr.newvalue END AS value,
       CASE WHEN tr.type = 'Set'
            THEN {_PRIORITY.format(column="tr.oldvalue::integer")}
            ELSE tr.oldvalue END AS previous_value
FROM transactions tr
JOIN users creator ON creator.id = tr.creator
WHERE tr.objecttype = 'RT::Ticket'
  AND tr.objectid = ANY($1::text[]::integer[])
  AND (tr.type IN ('Correspond', 'Comment', 'Status')
       OR (tr.type = 'Set' AND tr.field = 'Priority'))
ORDER BY tr.objectid, tr.created, tr.id"""

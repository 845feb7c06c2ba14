-- Request Tracker's tables as the RT updater reads them (sla_monitor.notifiers.rt), loaded by
-- sla_monitor.sql. RT keeps its timestamps as UTC without a zone.

-- name: already_posted
-- Did sla-monitor's user ($2) already correspond on ticket $1 since the window opened ($3)?
SELECT EXISTS (
    SELECT 1 FROM transactions tr JOIN users u ON u.id = tr.creator
    WHERE tr.objecttype = 'RT::Ticket' AND tr.objectid = $1::text::integer
      AND tr.type = 'Correspond' AND u.name = $2
      AND tr.created >= ($3::timestamptz AT TIME ZONE 'UTC'))

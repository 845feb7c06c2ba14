-- The reference helpdesk schema: what the generic SQL source reads by default.
-- Adapt your own helpdesk by writing queries that return the same columns (see README).
CREATE SCHEMA IF NOT EXISTS helpdesk;

CREATE TABLE IF NOT EXISTS helpdesk.tickets (
    id                 bigserial PRIMARY KEY,
    subject            text        NOT NULL DEFAULT '',
    queue              text        NOT NULL DEFAULT 'support',
    priority           text        NOT NULL DEFAULT 'normal',
    status             text        NOT NULL DEFAULT 'new',
    requester_email    text,
    requester_language text,        -- e.g. 'en', 'de'; chooses the update template
    requester_timezone text,        -- IANA name, for quiet hours
    organization       text,        -- the requester's company; policies may match on it
    -- Any helpdesk field a policy may match on: plan, ticket type, channel, ...
    attributes         jsonb       NOT NULL DEFAULT '{}',
    created_at         timestamptz NOT NULL DEFAULT now(),
    -- Bumped by every change to the ticket or a new event: the source's watermark.
    updated_at         timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- Columns added since the first version, for a helpdesk created by an older one.
ALTER TABLE helpdesk.tickets ADD COLUMN IF NOT EXISTS organization text;
ALTER TABLE helpdesk.tickets ADD COLUMN IF NOT EXISTS attributes jsonb NOT NULL DEFAULT '{}';
CREATE INDEX IF NOT EXISTS tickets_updated_at_id ON helpdesk.tickets (updated_at, id);
CREATE INDEX IF NOT EXISTS tickets_status ON helpdesk.tickets (status);

-- kind: customer_message | public_reply (by staff) | automatic_update (a progress update posted
-- by sla-monitor) | internal_note | status_change | priority_change
-- new_value / old_value: the new and previous status or priority for *_change events.
CREATE TABLE IF NOT EXISTS helpdesk.ticket_events (
    id         bigserial PRIMARY KEY,
    ticket_id  bigint      NOT NULL REFERENCES helpdesk.tickets (id) ON DELETE CASCADE,
    kind       text        NOT NULL CHECK (kind IN ('customer_message', 'public_reply',
                                                    'automatic_update', 'internal_note',
                                                    'status_change', 'priority_change')),
    author     text,
    body       text        NOT NULL DEFAULT '',
    new_value  text,
    old_value  text,
    -- Set by sla-monitor's progress updates: a retried delivery can never post twice.
    idempotency_key text UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ticket_events_ticket ON helpdesk.ticket_events (ticket_id, created_at, id);

-- Keeps tickets.updated_at moving so incremental polling sees every change.
CREATE OR REPLACE FUNCTION helpdesk.touch_ticket() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'tickets' THEN
        NEW.updated_at := clock_timestamp();
        RETURN NEW;
    END IF;
    UPDATE helpdesk.tickets SET updated_at = clock_timestamp() WHERE id = NEW.ticket_id;
    RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS tickets_touch ON helpdesk.tickets;
CREATE TRIGGER tickets_touch BEFORE UPDATE ON helpdesk.tickets
    FOR EACH ROW EXECUTE FUNCTION helpdesk.touch_ticket();
DROP TRIGGER IF EXISTS ticket_events_touch ON helpdesk.ticket_events;
CREATE TRIGGER ticket_events_touch AFTER INSERT ON helpdesk.ticket_events
    FOR EACH ROW EXECUTE FUNCTION helpdesk.touch_ticket();

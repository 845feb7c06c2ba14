-- The database roles sla-monitor needs, least privilege (README: "PostgreSQL: roles and sizing").
-- Run once as a superuser (or the helpdesk database's owner) in the helpdesk database, after
-- the helpdesk's own tables exist. Set the passwords afterwards, e.g. with psql's \password.
--
--   sla_monitor         owns the daemon's schema `sla_monitor` and nothing else: [database] dsn
--   sla_monitor_reader  reads the helpdesk, never writes it:                      [source] dsn
--
-- The daemon's schema may live in another database or server: run the first block there.

-- 1. The daemon's own schema, owned by its role: migrations create and alter tables in it.
--    No CREATE on the database: `sla-monitor migrate` creates the schema only when it is missing.
CREATE ROLE sla_monitor LOGIN;
CREATE SCHEMA sla_monitor AUTHORIZATION sla_monitor;

-- 2. The helpdesk, read only: the tables the source's queries read (here the reference schema's
--    two; for Request Tracker: tickets, transactions, queues, users, groups, groupmembers).
CREATE ROLE sla_monitor_reader LOGIN;
GRANT USAGE ON SCHEMA helpdesk TO sla_monitor_reader;
GRANT SELECT ON helpdesk.tickets, helpdesk.ticket_events TO sla_monitor_reader;

-- 3. Only with [updates] mode = "post" and delivery = "sql": the progress-update insert writes
--    one event per update, and the reference schema's trigger then moves the ticket's
--    updated_at as the inserting role (that column only).
-- GRANT INSERT ON helpdesk.ticket_events TO sla_monitor_reader;
-- GRANT USAGE ON SEQUENCE helpdesk.ticket_events_id_seq TO sla_monitor_reader;
-- GRANT UPDATE (updated_at) ON helpdesk.tickets TO sla_monitor_reader;

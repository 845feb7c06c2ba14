-- Who each progress update was owed to, and the policy that judged its ticket: the report
-- counts updates owed and sent per group (sla_monitor.report), as it counts completions.
-- Nullable, and nothing is back-filled: rows recorded before this migration never knew them,
-- so they stay NULL and report as "(unknown)".
ALTER TABLE {schema}.customer_updates
    ADD COLUMN queue text, ADD COLUMN priority text, ADD COLUMN policy text,
    ADD COLUMN customer text, ADD COLUMN organization text;

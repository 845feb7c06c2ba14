-- Who each breach and completion was for, and the policy that judged it: the reports group by
-- them (sla_monitor.report). Nullable, and nothing is back-filled: rows recorded before this
-- migration never knew the customer, so they stay NULL and report as "(unknown)".
ALTER TABLE {schema}.breaches
    ADD COLUMN customer text, ADD COLUMN organization text, ADD COLUMN policy text;
ALTER TABLE {schema}.completions
    ADD COLUMN customer text, ADD COLUMN organization text, ADD COLUMN policy text;

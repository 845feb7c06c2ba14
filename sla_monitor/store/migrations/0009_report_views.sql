-- The report's arithmetic as SQL, for Grafana's PostgreSQL data source and ad-hoc queries
-- (deploy/grafana/sla-monitor-customers.json). Reads only the tables of 0001 and the columns of
-- 0007: nothing here needs a later migration. Each agrees with `sla-monitor report`
-- (sla_monitor/report.py); tests/integration/test_report_views.py holds them to it.

-- Completions and breaches per source, UTC day, organization and clock. A row recorded without
-- an organization counts under '(unknown)', as in the report. compliance = met / completions
-- (NULL without completions); breaches counts the clocks that crossed their target that day
-- (by breached_at, completed or not), the report's "breaches" column. Sum the counts over days
-- and clocks for a period: the compliance of `sla-monitor report --by organization --from D1
-- --to D2` is sum(met) / sum(completions) over day >= D1 AND day <= D2.
CREATE VIEW {schema}.compliance_by_organization AS
WITH done AS (
    SELECT source,
           date_trunc('day', stopped_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS day,
           coalesce(organization, '(unknown)') AS organization,
           clock,
           count(*) AS completions,
           count(*) FILTER (WHERE met) AS met
    FROM {schema}.completions
    GROUP BY 1, 2, 3, 4
), crossed AS (
    SELECT source,
           date_trunc('day', breached_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS day,
           coalesce(organization, '(unknown)') AS organization,
           clock,
           count(*) AS breaches
    FROM {schema}.breaches
    GROUP BY 1, 2, 3, 4
)
SELECT source, day, organization, clock,
       coalesce(done.completions, 0) AS completions,
       coalesce(done.met, 0) AS met,
       coalesce(done.completions, 0) - coalesce(done.met, 0) AS breached,
       coalesce(crossed.breaches, 0) AS breaches,
       done.met::double precision / nullif(done.completions, 0) AS compliance
FROM done FULL JOIN crossed USING (source, day, organization, clock);

-- Customers and organizations at risk of churning, by the rules of [churn]: in the window
-- [p_at - p_window, p_at), at least p_min_breaches breached clocks, or a compliance below
-- p_min_compliance, or a completion that took longer than p_max_wait. A view cannot read the
-- configuration, so the rules are this function's arguments; their defaults are [churn]'s.
-- Durations count in seconds, as the daemon's do (a day is 86400 s, in any time zone).
CREATE FUNCTION {schema}.customers_at_risk_in(
    p_window interval DEFAULT interval '90 days',
    p_min_breaches integer DEFAULT 3,
    p_min_compliance double precision DEFAULT 0.8,
    p_max_wait interval DEFAULT interval '48 hours',
    p_at timestamptz DEFAULT now()
) RETURNS TABLE (
    source text,
    kind text,  -- 'customer' or 'organization'
    name text,
    breaches bigint,  -- breached clocks in the window
    completions bigint,
    met bigint,
    compliance double precision,  -- met / completions, NULL without completions
    over_max_wait bigint,  -- completions that took longer than p_max_wait
    longest_wait_seconds double precision,
    reasons text[]  -- of 'breaches', 'compliance', 'max_wait', in that order
)
LANGUAGE sql STABLE
AS $$
WITH done AS (
    SELECT c.source, k.kind, k.name,
           count(*) AS completions,
           count(*) FILTER (WHERE c.met) AS met,
           count(*) FILTER (WHERE c.elapsed_seconds > extract(epoch FROM p_max_wait))
               AS over_max_wait,
           max(c.elapsed_seconds) AS longest
    FROM {schema}.completions c
    CROSS JOIN LATERAL (VALUES ('customer', c.customer), ('organization', c.organization))
        AS k (kind, name)
    WHERE k.name IS NOT NULL
      AND c.stopped_at >= p_at - extract(epoch FROM p_window) * interval '1 second'
      AND c.stopped_at < p_at
    GROUP BY 1, 2, 3
), crossed AS (
    SELECT b.source, k.kind, k.name, count(*) AS breaches
    FROM {schema}.breaches b
    CROSS JOIN LATERAL (VALUES ('customer', b.customer), ('organization', b.organization))
        AS k (kind, name)
    WHERE k.name IS NOT NULL
      AND b.breached_at >= p_at - extract(epoch FROM p_window) * interval '1 second'
      AND b.breached_at < p_at
    GROUP BY 1, 2, 3
), counted AS (
    SELECT source, kind, name,
           coalesce(crossed.breaches, 0) AS breaches,
           coalesce(done.completions, 0) AS completions,
           coalesce(done.met, 0) AS met,
           done.met::double precision / nullif(done.completions, 0) AS compliance,
           coalesce(done.over_max_wait, 0) AS over_max_wait,
           done.longest AS longest_wait_seconds
    FROM done FULL JOIN crossed USING (source, kind, name)
), judged AS (
    SELECT counted.*,
           array_remove(ARRAY[
               CASE WHEN counted.breaches >= p_min_breaches THEN 'breaches' END,
               CASE WHEN counted.compliance < p_min_compliance THEN 'compliance' END,
               CASE WHEN counted.over_max_wait > 0 THEN 'max_wait' END
           ], NULL) AS reasons
    FROM counted
)
SELECT * FROM judged WHERE cardinality(reasons) > 0
$$;

-- The same with [churn]'s default rules (90 days, 3 breaches, 80%, 48 hours) ending now. With
-- other rules in the configuration, call customers_at_risk_in(...) with them instead.
CREATE VIEW {schema}.customers_at_risk AS
SELECT * FROM {schema}.customers_at_risk_in();

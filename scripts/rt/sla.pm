# RT's own SLA for sla-monitor's agreement test (tests/integration/test_rt_sla_agreement.py).
# scripts/rt/start.sh installs it into RT_SiteConfig.d; the test imports this same file with
# `sla-monitor import-rt-sla` and compares RT's Due dates with sla-monitor's deadlines. Only
# the queue "SLA" has SLAs enabled and there is no Default level: other queues are unaffected.
Set(%ServiceBusinessHours, (
    'office' => {
        map( { $_ => { Start => '9:00', End => '17:00' } } 1 .. 5 ),
        holidays => ['2026-11-11'],
    },
));
Set(%ServiceAgreements, (
    Levels => {
        '24x7' => {
            Response   => { RealMinutes => 60 },
            KeepInLoop => { RealMinutes => 4 * 60 },
            Resolve    => { RealMinutes => 24 * 60 },
        },
        'office' => {
            BusinessHours => 'office',
            Timezone      => 'Europe/Berlin',
            Response      => 120,
            Resolve       => { BusinessMinutes => 8 * 60 },
        },
        'office-long' => {
            BusinessHours => 'office',
            Timezone      => 'Europe/Berlin',
            Resolve       => { BusinessMinutes => 25 * 8 * 60 },  # 25 business days
        },
    },
));
1;

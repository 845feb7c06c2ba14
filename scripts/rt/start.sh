#!/usr/bin/env bash
# Starts RT 5 on http://127.0.0.1:${RT_PORT:-8088} (REST2 at /REST/2.0/) for the tests, with
# mail going nowhere, and the users `customer`, `staff` and `sla-monitor` (passwords
# "<name>-pass"; root keeps "password"). Idempotent: an RT already answering is left running.
set -euo pipefail
port=${RT_PORT:-8088}
state=${RT_STATE_DIR:-/tmp/sla-monitor-rt}
mkdir -p "$state"
here=$(cd "$(dirname "$0")" && pwd)

# RT's own SLA levels (scripts/rt/sla.pm): RT reads its configuration only at start, so a
# running RT is restarted when the installed copy is missing or out of date.
sla_config=/etc/request-tracker5/RT_SiteConfig.d/91-sla-monitor-sla.pm
sla_changed=0
cmp -s "$here/sla.pm" "$sla_config" || sla_changed=1
if curl -fsS -o /dev/null -u root:password "http://127.0.0.1:$port/REST/2.0/queues/all" 2>/dev/null; then
    ((sla_changed)) || exit 0
    "$here/stop.sh"
    for _ in $(seq 1 60); do
        curl -fsS -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null || break
        sleep 0.5
    done
fi
command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432 || {
    echo "rt/start.sh: PostgreSQL on 127.0.0.1:5432 is needed for RT" >&2; exit 1; }

cat > /etc/request-tracker5/RT_SiteConfig.d/90-sla-monitor-test.pm <<PERL
# Written by sla-monitor's scripts/rt/start.sh for the integration tests.
Set(\$WebDomain, '127.0.0.1');
Set(\$WebPort, $port);
Set(\$WebPath, '');
Set(\$WebBaseURL, 'http://127.0.0.1:$port');
Set(\$MailCommand, 'testfile');
Set(\$LogToSTDERR, 'warning');
1;
PERL
install -m 0644 "$here/sla.pm" "$sla_config"
perl "$here/setup.pl"
nohup /usr/share/request-tracker5/libexec/rt-server --server Standalone --port "$port" \
    > "$state/rt-server.log" 2>&1 &
echo $! > "$state/rt-server.pid"
for _ in $(seq 1 120); do
    if curl -fsS -o /dev/null -u root:password "http://127.0.0.1:$port/REST/2.0/queues/all" 2>/dev/null; then
        exit 0
    fi
    sleep 0.5
done
echo "rt/start.sh: RT did not answer on port $port; see $state/rt-server.log" >&2
exit 1

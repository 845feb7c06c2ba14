#!/usr/bin/env bash
# Stops the RT started by start.sh.
set -euo pipefail
state=${RT_STATE_DIR:-/tmp/sla-monitor-rt}
[[ -f "$state/rt-server.pid" ]] && kill "$(cat "$state/rt-server.pid")" 2>/dev/null || true
rm -f "$state/rt-server.pid"

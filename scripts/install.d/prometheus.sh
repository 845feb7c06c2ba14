# Sourced by scripts/install-test-deps.sh: Prometheus and promtool for the deployment tests,
# systemd-analyze for the unit checks.
apt_install prometheus systemd

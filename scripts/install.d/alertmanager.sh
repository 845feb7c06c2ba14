# Sourced by scripts/install-test-deps.sh: the real Alertmanager the escalation tests talk to.
apt_install prometheus-alertmanager

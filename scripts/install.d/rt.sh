# Sourced by scripts/install-test-deps.sh: a real Request Tracker 5 for the RT tests
# (scripts/rt/start.sh talks to it with curl).
apt_install curl
scripts/rt/install.sh

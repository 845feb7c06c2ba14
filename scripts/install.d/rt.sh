# Sourced by scripts/install-test-deps.sh: a real Request Tracker 5 for the RT tests.
scripts/rt/install.sh

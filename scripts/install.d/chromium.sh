# Sourced by scripts/install-test-deps.sh: a headless Chromium for the board's browser test
# (tests/integration/test_board.py drives it over the DevTools protocol).
apt_install chromium

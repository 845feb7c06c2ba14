# Sourced by scripts/install-test-deps.sh: the Debian package tests. build-deb.sh needs
# Debian's python3 with venv; lintian checks the package; mmdebstrap builds the Debian 12 root
# that systemd-nspawn (systemd-container) boots, nsenter (util-linux) runs commands in it.
apt_install python3 python3-venv lintian mmdebstrap systemd-container util-linux

#!/usr/bin/env bash
# Installs the system packages the integration tests talk to (as root, non-interactive).
# Idempotent: every step is quick when its packages are already there.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
    echo "install-test-deps: not root, skipping system packages" >&2
    exit 0
fi

apt_install() {
    local missing=()
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$package")
    done
    if ((${#missing[@]})); then
        # A fresh machine has no package lists yet: on a failed install, update and retry.
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            -o DPkg::Lock::Timeout=600 "${missing[@]}" 2>/dev/null || {
            apt-get update -qq -o DPkg::Lock::Timeout=600
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                -o DPkg::Lock::Timeout=600 "${missing[@]}"
        }
    fi
}

# Each integration needing system packages adds its line here.
for step in scripts/install.d/*.sh; do
    [[ -e "$step" ]] || continue
    # shellcheck source=/dev/null
    source "$step"
done

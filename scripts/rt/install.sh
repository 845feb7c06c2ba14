#!/usr/bin/env bash
# Installs Request Tracker 5 with its PostgreSQL backend from Debian's packages. The package
# scripts (dbconfig-common) create and initialise the database `rtdb` in the local PostgreSQL.
set -euo pipefail
packages=(request-tracker5 rt5-db-postgresql rt5-standalone rt5-clients)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]})) || exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 "${missing[@]}" \
    || { apt-get update -qq; apt-get install -y -qq --no-install-recommends \
         -o DPkg::Lock::Timeout=600 "${missing[@]}"; }

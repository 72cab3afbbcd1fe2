#!/usr/bin/env bash
# Set up gridmap on Debian/Ubuntu: system packages when missing, then a virtualenv in .venv.
#   scripts/setup.sh run    what `make run` needs (SpatiaLite)
#   scripts/setup.sh test   what `make test` needs as well (PostgreSQL + PostGIS, Chromium, CJK fonts)
set -euo pipefail
cd "$(dirname "$0")/.."
purpose=${1:-run}
PYTHON=${PYTHON:-python3}

packages=()
need() { dpkg -s "$1" >/dev/null 2>&1 || packages+=("$1"); }
if command -v dpkg >/dev/null 2>&1; then
  need libsqlite3-mod-spatialite
  if [ "$purpose" = test ]; then
    if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then need postgresql; fi
    if ! ls /usr/share/postgresql/*/extension/postgis.control >/dev/null 2>&1; then need postgis; fi
    command -v chromium >/dev/null 2>&1 || need chromium
    need fonts-noto-cjk
  fi
  if [ ${#packages[@]} -gt 0 ]; then
    echo "setup: installing system packages: ${packages[*]}"
    sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    # The postgresql package starts a cluster on install where services can run; tests use their own.
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${packages[@]}"
  fi
else
  echo "setup: not a Debian/Ubuntu system; install SpatiaLite (and for tests PostgreSQL+PostGIS, Chromium) yourself" >&2
fi

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.installed-$purpose"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  extras=""; [ "$purpose" = test ] && extras="[test]"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".$extras"
  touch "$stamp"
fi

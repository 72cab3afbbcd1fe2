#!/usr/bin/env bash
# Set up gridmap on Debian/Ubuntu: system packages when missing, then a virtualenv in .venv.
#   scripts/setup.sh run    what `make run` needs (SpatiaLite, npm for the map's assets)
#   scripts/setup.sh test   what `make test` needs as well (PostgreSQL + PostGIS, Chromium, CJK fonts)
set -euo pipefail
cd "$(dirname "$0")/.."
purpose=${1:-run}
PYTHON=${PYTHON:-python3}

packages=()
need() { dpkg -s "$1" >/dev/null 2>&1 || packages+=("$1"); }
install_needed() {
  [ ${#packages[@]} -gt 0 ] || return 0
  echo "setup: installing system packages: ${packages[*]}"
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  [ -n "${apt_updated:-}" ] || { $sudo_cmd apt-get update -qq; apt_updated=1; }
  # The postgresql package starts a cluster on install where services can run; tests use their own.
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${packages[@]}"
  packages=()
}
if command -v dpkg >/dev/null 2>&1; then
  need libsqlite3-mod-spatialite
  # The map's JavaScript and CSS come from the npm registry at set-up (never from a CDN at run time).
  command -v npm >/dev/null 2>&1 || need npm
  if [ "$purpose" = test ]; then
    if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then need postgresql; fi
    command -v chromium >/dev/null 2>&1 || need chromium
    need fonts-noto-cjk
  fi
  install_needed
  if [ "$purpose" = test ]; then
    # The PostGIS extension is packaged per server version (the plain `postgis` package is only its tools).
    for server in /usr/lib/postgresql/*/; do
      version=$(basename "$server")
      [ -f "/usr/share/postgresql/$version/extension/postgis.control" ] || need "postgresql-$version-postgis-3"
    done
    install_needed
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

# Leaflet and its plugins, into gridmap/static/vendor (git-ignored), whenever the lock file is newer.
if [ ! -f gridmap/static/vendor/manifest.json ] || [ package-lock.json -nt gridmap/static/vendor/manifest.json ]; then
  .venv/bin/python -m gridmap.assets install
fi

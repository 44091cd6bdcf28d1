#!/usr/bin/env bash
# Install PostgreSQL (server + client) and PostGIS from Debian's packages, for the
# tests of the PostgreSQL store (tests/broker/store/) and `WAZIUP_FT_DB=postgresql://...`
# runs of the Orion cases. Idempotent: does nothing when initdb and PostGIS are there.
# The tests start their own throw-away cluster; this script starts no server.
#
# Usage: scripts/install-postgres.sh          (as root, or with sudo available)
#        PG_VERSION=16 scripts/install-postgres.sh   to pick another major version
set -euo pipefail

sudo=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "install-postgres: run as root (or install sudo)" >&2; exit 1; }
    sudo=sudo
fi

have_server() {
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}
pg_major() {
    ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sed -E 's#/usr/lib/postgresql/([0-9]+)/.*#\1#' | sort -n | tail -1
}
have_postgis() {
    local v; v=$(pg_major)
    [ -n "$v" ] && ls /usr/share/postgresql/"$v"/extension/postgis.control >/dev/null 2>&1
}

if have_server && have_postgis; then
    echo "install-postgres: PostgreSQL $(pg_major) with PostGIS already installed"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
if ! have_server; then
    # Debian's "postgresql" metapackage installs the distribution's supported version;
    # policy-rc.d keeps apt from starting a system cluster we don't use.
    $sudo apt-get install -y -qq --no-install-recommends postgresql postgresql-contrib
fi
version=${PG_VERSION:-$(pg_major)}
postgis_pkg="postgresql-${version}-postgis-3"
if apt-cache show "$postgis_pkg" >/dev/null 2>&1; then
    $sudo apt-get install -y -qq --no-install-recommends "$postgis_pkg" "${postgis_pkg}-scripts"
else
    echo "install-postgres: no $postgis_pkg package; the store runs without PostGIS" >&2
fi
have_server || { echo "install-postgres: initdb still missing after install" >&2; exit 1; }
echo "install-postgres: PostgreSQL $(pg_major) ready (initdb in /usr/lib/postgresql/$(pg_major)/bin)"

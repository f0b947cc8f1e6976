#!/usr/bin/env bash
# Installs (when missing) and starts a local PostgreSQL, idempotently, for the meta service's
# PostgreSQL backend tests. Prints the connection URL on its last line, e.g.
#   postgresql://postgres@%2Fvar%2Frun%2Fpostgresql/postgres
# Tests read it from MILLPOND_PG_URL when set, else connect to that same unix socket.
# Runs as root (as CI does); the tests connect over the unix socket as a superuser role named
# after the OS user (created here).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

if ! command -v pg_lsclusters > /dev/null 2>&1; then
  apt-get -o DPkg::Lock::Timeout=600 -qq update
  apt-get -o DPkg::Lock::Timeout=600 -qq install -y --no-install-recommends postgresql > /tmp/pg-apt.log 2>&1 ||
    { tail -20 /tmp/pg-apt.log >&2; exit 1; }
fi

# The first cluster (Debian's postgresql package creates "<version> main").
read -r version cluster < <(pg_lsclusters --no-header | awk 'NR==1 {print $1, $2}') || true
if [ -z "${version:-}" ]; then
  version=$(ls /usr/lib/postgresql | sort -V | tail -1)
  cluster=main
  pg_createcluster "$version" "$cluster" > /dev/null
fi
if ! pg_lsclusters --no-header | awk -v v="$version" -v c="$cluster" '$1==v && $2==c {print $4}' | grep -q online; then
  pg_ctlcluster "$version" "$cluster" start
fi

# Wait until it accepts connections on the unix socket; then make sure the calling OS user has a
# superuser role of its own name (Debian's default peer authentication maps OS user to role), so
# tests can create and drop their databases.
me=$(id -un)
for _ in $(seq 1 50); do
  if su postgres -c "psql -h /var/run/postgresql -d postgres -Atc 'select 1'" > /dev/null 2>&1; then
    if ! su postgres -c "psql -h /var/run/postgresql -d postgres -Atc \"select 1 from pg_roles where rolname = '$me'\"" | grep -q 1; then
      su postgres -c "createuser -h /var/run/postgresql -s '$me'"
    fi
    echo "postgresql://$me@%2Fvar%2Frun%2Fpostgresql/postgres"
    exit 0
  fi
  sleep 0.2
done
echo "pg-start: PostgreSQL $version/$cluster did not accept connections" >&2
exit 1

#!/usr/bin/env bash
# Installs the Debian 12 packages pgfleet needs, only those missing.
#   install-deps.sh build   -> what `make` and `make run` need
#   install-deps.sh test    -> that plus what `make test` and `make bench` need
# Then it builds pgfleet's PostgreSQL server module (pgmodule/) and installs it beside
# PostgreSQL's own libraries when it is missing there or differs.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
want=(build-essential pkg-config postgresql-15 postgresql-client-15 libpq-dev postgresql-server-dev-15
      libmicrohttpd-dev libgnutls28-dev libjansson-dev libsqlite3-dev libsodium-dev libcurl4-openssl-dev libssl-dev openssl curl
      pgbouncer pgbackrest
      postgresql-15-pgextwlist postgresql-15-postgis-3 postgresql-15-hypopg postgresql-15-partman)
if [ "${1:-build}" = test ]; then
  want+=(libcmocka-dev nodejs npm wrk nginx-light clang-format clang libclang-rt-14-dev procps iproute2 bsdutils zsh
         chromium python3-psycopg)
fi
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# node and npm may come from outside Debian's packages (as on the CI machines): accept them.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
pkgs=()
for p in "${missing[@]}"; do [ -n "$p" ] && pkgs+=("$p"); done
if [ ${#pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "pgfleet: missing packages: ${pkgs[*]} (run as root, or install them)" >&2
    exit 1
  fi
  echo "pgfleet: installing ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi

# every server preloads the module (the CREATE DATABASE limit): pgfleet refuses to start
# without it
make -s -C "$root/pgmodule"
libdir="$(/usr/lib/postgresql/15/bin/pg_config --pkglibdir)"
if ! cmp -s "$root/pgmodule/pgfleet_limits.so" "$libdir/pgfleet_limits.so"; then
  if [ "$(id -u)" != 0 ]; then
    echo "pgfleet: pgfleet_limits.so is not installed in $libdir (run as root: make deps)" >&2
    exit 1
  fi
  echo "pgfleet: installing pgfleet_limits.so into $libdir"
  make -s -C "$root/pgmodule" install >/dev/null
fi

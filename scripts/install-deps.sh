#!/usr/bin/env bash
# Installs the Debian 12 packages pgfleet needs, only those missing.
#   install-deps.sh build   -> what `make` and `make run` need
#   install-deps.sh test    -> that plus what `make test` and `make bench` need
set -euo pipefail
want=(build-essential pkg-config postgresql-15 postgresql-client-15 libpq-dev
      libmicrohttpd-dev libjansson-dev libsqlite3-dev libsodium-dev libcurl4-openssl-dev libssl-dev openssl curl
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
[ ${#pkgs[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "pgfleet: missing packages: ${pkgs[*]} (run as root, or install them)" >&2
  exit 1
fi
echo "pgfleet: installing ${pkgs[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null

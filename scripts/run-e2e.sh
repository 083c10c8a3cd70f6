#!/usr/bin/env bash
# End-to-end tests: the official @prisma/management-api-sdk against a real pgfleet server
# (build/pgfleet-san, built by `make e2e`) and real PostgreSQL instances.
#   scripts/run-e2e.sh [test files...]     (default: every tests/e2e/*.test.mjs; a file runs
#   alone: from the repository root, from tests/e2e, or an absolute path)
# Env: PGFLEET_BIN (default build/pgfleet-san), E2E_CONCURRENCY (default 3),
#      E2E_KEEP_HOME=1 keeps each server's home (logs, instances) for inspection.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export PGFLEET_BIN="${PGFLEET_BIN:-build/pgfleet-san}"
case "$PGFLEET_BIN" in /*) ;; *) PGFLEET_BIN="$root/$PGFLEET_BIN" ;; esac
if [ ! -x "$PGFLEET_BIN" ]; then
  echo "run-e2e: server binary $PGFLEET_BIN missing (make e2e builds it)" >&2
  exit 2
fi
command -v node >/dev/null || { echo "run-e2e: node missing (make deps-test)" >&2; exit 2; }
command -v psql >/dev/null || { echo "run-e2e: psql missing (make deps-test)" >&2; exit 2; }

# the HTTP limits test holds ~1,600 sockets at once
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cd tests/e2e
# npm ci only when node_modules is missing or older than the lock file
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
node gen-schemas.mjs

if [ $# -gt 0 ]; then
  # each argument: a path from the repository root, from tests/e2e, or absolute
  files=()
  for f in "$@"; do
    case "$f" in /*) abs=$f ;; *) if [ -f "$root/$f" ]; then abs=$root/$f; else abs=$root/tests/e2e/$f; fi ;; esac
    if [ ! -f "$abs" ]; then
      echo "run-e2e: no test file $f" >&2
      exit 2
    fi
    files+=("$(realpath --relative-to="$root/tests/e2e" "$abs")")
  done
else
  files=(selfcheck/*.test.mjs *.test.mjs)
fi
# TAP reporter: prints the summary lines (# tests, # pass, # fail); exit status non-zero on failure
exec node --test --test-reporter=tap --test-concurrency="${E2E_CONCURRENCY:-3}" "${files[@]}"

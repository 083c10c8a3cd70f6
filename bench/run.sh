#!/usr/bin/env bash
# `make bench`: figures, not pass/fail. Each script starts a release build of pgfleet on a
# temporary home and free ports. bench.mjs prints create-to-ready latency, GET throughput
# under wrk, the server's RSS with 100 databases, their PostgreSQL servers' PSS and the usage
# sampler's pass over them; pooler.mjs prints pgbench TPS through
# the pooled and the direct endpoint and new-connection latency through each; backup.mjs
# prints full backup, in-place restore and clone of a ~1 GiB database, each as a ratio to
# `cp -a` of its data directory.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d tests/e2e/node_modules ] || (cd tests/e2e && npm ci --silent --no-audit --no-fund)
node bench/bench.mjs "$@"
node bench/pooler.mjs
node bench/backup.mjs

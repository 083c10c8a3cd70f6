#!/usr/bin/env bash
# `make bench`: figures, not pass/fail. Starts a release build of pgfleet on a temporary
# home and free ports, then prints create-to-ready latency, GET throughput under wrk and
# the server's RSS with 100 databases; then the backup figures (bench/backup.mjs): full
# backup, in-place restore and clone of a ~1 GiB database, each as a ratio to `cp -a`.
set -euo pipefail
cd "$(dirname "$0")/.."
node bench/bench.mjs "$@"
exec node bench/backup.mjs

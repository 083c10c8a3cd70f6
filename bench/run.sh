#!/usr/bin/env bash
# `make bench`: figures, not pass/fail. Starts a release build of pgfleet on a temporary
# home and free ports, then prints create-to-ready latency, GET throughput under wrk and
# the server's RSS with 100 databases.
set -euo pipefail
cd "$(dirname "$0")/.."
exec node bench/bench.mjs "$@"

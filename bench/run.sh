#!/usr/bin/env bash
# `make bench`: figures, not pass/fail. Each script starts a release build of pgfleet on a
# temporary home and free ports, the one way of bench/lib.mjs (benchServer). bench.mjs prints
# create-to-ready latency, GET throughput under wrk, the server's RSS with 100 databases,
# their PostgreSQL servers' PSS and the usage sampler's pass over them; pooler.mjs prints
# pgbench TPS through the pooled and the direct endpoint and new-connection latency through
# each; backup.mjs prints full backup, in-place restore and clone of a ~1 GiB database, each as a ratio to
# `cp -a` of its data directory; http.mjs prints GET latency, RSS and threads while 2,000 idle
# and 1,000 slowloris connections are held, and wrk req/s at 32 and 1,000 connections next to
# nginx serving a static file of the same size; killtrials.mjs prints acknowledged and lost ops
# over randomized kill -9 trials (BENCH_KILL_TRIALS, default 100); list.mjs prints the p50 of a
# page of 100 next to a single GET with BENCH_LIST_DBS databases (default 2000: each a real
# server, so size it to the machine); create.mjs prints create-to-ready p50/p99 over
# BENCH_CREATES (default 100) sequential creates from the warm pool, with the provision's own
# steps (spare taken, server start, role create) from the same run, and the same without
# spares; density.mjs prints memory, disk, API latency, idle CPU and the first backups' cost
# with BENCH_DENSITY_DBS databases (default 500) and a projection for 10,000
# (docs/density.md).
# wake.mjs prints wake p50/p99 through the direct and the
# pooled endpoint beside the server's own start time; datapath.mjs prints pgbench TPS with
# TLS through the data path against TLS straight to the same server (a test-only listener), the
# microseconds added per query and new-connection latency both ways; sleeprate.mjs prints how
# fast woken, idle databases go back to sleep (BENCH_SLEEP_DBS, default 24). BENCH_ONLY=name[,name]
# runs only those scripts.
set -euo pipefail
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cd "$(dirname "$0")/.."
[ -d tests/e2e/node_modules ] || (cd tests/e2e && npm ci --silent --no-audit --no-fund)
want() { [ -z "${BENCH_ONLY:-}" ] || [[ ",$BENCH_ONLY," == *",$1,"* ]]; }
if want bench; then node bench/bench.mjs "$@"; fi
if want pooler; then node bench/pooler.mjs; fi
if want backup; then node bench/backup.mjs; fi
if want http; then node bench/http.mjs; fi
if want killtrials; then node bench/killtrials.mjs; fi
if want list; then node bench/list.mjs; fi
if want create; then node bench/create.mjs; fi
if want density; then node bench/density.mjs; fi
if want wake; then node bench/wake.mjs; fi
if want datapath; then node bench/datapath.mjs; fi
if want sleeprate; then node bench/sleeprate.mjs; fi

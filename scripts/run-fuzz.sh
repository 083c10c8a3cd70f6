#!/usr/bin/env bash
# Runs each libFuzzer target for a bounded time from its seed corpus.
#   scripts/run-fuzz.sh SECONDS build/fuzz/bin/fuzz_x ...
# New inputs go to a temporary corpus (the seeds in tests/fuzz/corpus/<target> are read
# only); a crash leaves its input as build/fuzz/crash-<target>-* and fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=$1
shift
fail=0
for bin in "$@"; do
  name=$(basename "$bin")
  seeds=tests/fuzz/corpus/$name
  work=$(mktemp -d)
  echo "== $name (${secs} s)"
  if ! "$bin" -max_total_time="$secs" -print_final_stats=0 -timeout=10 -rss_limit_mb=1024 \
      -artifact_prefix="build/fuzz/crash-$name-" "$work" ${seeds:+$( [ -d "$seeds" ] && echo "$seeds")} \
      2>"$work.log"; then
    tail -40 "$work.log"
    fail=1
  else
    grep -E "^Done [0-9]+ runs" "$work.log" || tail -3 "$work.log"
  fi
  rm -rf "$work" "$work.log"
done
exit $fail

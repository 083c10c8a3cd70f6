#!/usr/bin/env bash
# Checks the layering of src/ over its #include "..." lines: a file may include only its
# own layer and the layers below it (docs/architecture.md). Prints every violation as
# file:line and fails if there is one. Usage: scripts/check-layers.sh [SRC_DIR]
#
#   util                         bottom: includes nothing of ours but util
#   http                         util
#   store, engine                util
#   auth                         store, util
#   datapath                     util (the data path process)
#   ops                          engine, store, util
#   api                          http, auth, store, ops, util (never engine)
#   cli                          util (talks to a server over its API, never the store)
#   serve                        api http auth store ops engine datapath util (serve's run)
#   main.c                       everything
set -u
src=${1:-src}

allowed() { # layer -> the layers it may include (its own first)
  case $1 in
    util) echo "util" ;;
    http) echo "http util" ;;
    store) echo "store util" ;;
    engine) echo "engine util" ;;
    auth) echo "auth store util" ;;
    datapath) echo "datapath util" ;;
    ops) echo "ops engine store util" ;;
    api) echo "api http auth store ops util" ;;
    cli) echo "cli util" ;;
    serve) echo "serve api http auth store ops engine datapath util" ;;
    main) echo "main serve cli api http auth store ops engine datapath util" ;;
    *) return 1 ;;
  esac
}

bad=0
nfiles=0
while IFS= read -r -d '' f; do
  rel=${f#"$src"/}
  case $rel in
    */*) layer=${rel%%/*} ;;
    main.c) layer=main ;;
    *) echo "$f: not in a layer folder (add it to scripts/check-layers.sh)"; bad=1; continue ;;
  esac
  if ! ok=$(allowed "$layer"); then
    echo "$f: unknown layer '$layer' (add it to scripts/check-layers.sh and docs/architecture.md)"
    bad=1
    continue
  fi
  nfiles=$((nfiles + 1))
  # lines like: 12:#include "engine/engine.h"
  while IFS= read -r hit; do
    line=${hit%%:*}
    inc=$(sed -E 's/^[0-9]+:[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]*)".*/\1/' <<<"$hit")
    case $inc in
      */*) target=${inc%%/*} ;;
      *) continue ;; # same folder
    esac
    if ! grep -qw -- "$target" <<<"$ok"; then
      echo "$f:$line: layer '$layer' includes '$inc' from layer '$target' (allowed: $ok)"
      bad=1
    fi
  done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f")
done < <(find "$src" -type f \( -name '*.c' -o -name '*.h' \) -print0 | sort -z)

if [ $bad -ne 0 ]; then
  echo "check-layers: FAILED (a layer includes one above it, see docs/architecture.md)"
  exit 1
fi
echo "check-layers: ok ($nfiles files)"

#!/usr/bin/env bash
# `make run`: prints a service token and a curl example, then runs pgfleet in the foreground.
set -euo pipefail
home="$1"
listen="$2"
bin="$(dirname "$0")/../build/pgfleet"
mkdir -p "$home"
token="$("$bin" token create --home "$home" --name "make run" 2>/dev/null | tail -n 1)"
cat <<TXT

pgfleet home: $home
API:          http://$listen   (Ctrl-C stops pgfleet and every database it runs)

A service token for the default workspace (shown once; make another with
  build/pgfleet token create --home $home):

  export PGFLEET_TOKEN=$token

Create a project with a database, then read its connection string:

  curl -s -X POST http://$listen/v1/projects -H "Authorization: Bearer \$PGFLEET_TOKEN" \\
       -H 'Content-Type: application/json' -d '{"name":"demo"}'
  curl -s http://$listen/v1/databases -H "Authorization: Bearer \$PGFLEET_TOKEN"

TXT
exec "$bin" serve --home "$home" --listen "$listen"

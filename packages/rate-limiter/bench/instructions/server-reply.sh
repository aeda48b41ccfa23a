#!/usr/bin/env bash
# Redis server instructions per reply of a standalone batch call (32 one-limit keys, 226 numbers),
# built by server-reply.lua as the integer array (mode array, the reply before) or as one string
# with each distinct number formatted once (text, check.lua's batch reply now; direct formats the
# per-key number with no cache), counted by valgrind inside EVALSHA only (--toggle-collect):
# (instructions of 6k calls - of 2k) / 4k. distinct=0: every key the same remaining count (as the
# bench's round-robin keys mostly have); 1: a remaining count of its own per key (the worst case
# for the text form: one string.format per key). Usage: server-reply.sh array|text|direct 0|1
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PATH="$here/../../../../.tools/node_modules/.bin:$PATH"
port="${REDIS_COUNT_PORT:-16396}"
count() {
  local dir; dir="$(mktemp -d)"
  valgrind --tool=callgrind --callgrind-out-file=/dev/null --log-file="$dir/v.log" --toggle-collect=evalShaCommand \
    redis-server --port $port --save '' --dir "$dir" --logfile "$dir/r.log" &
  local s=$!
  until redis-cli -p $port ping >/dev/null 2>&1; do sleep 0.3; done
  node "$here/server-reply.mjs" $port "$1" "$2" "$3"
  redis-cli -p $port shutdown nosave >/dev/null 2>&1 || true
  wait $s || true
  sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$dir/v.log"; rm -rf "$dir"
}
l=$(count "$1" "$2" 2000); h=$(count "$1" "$2" 6000)
echo "$1 distinct=$2: $(((h - l) / 4000)) per call, $(((h - l) / 4000 / 32)) per key"

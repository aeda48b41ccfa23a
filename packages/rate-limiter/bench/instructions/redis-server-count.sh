#!/usr/bin/env bash
# Redis server instructions per check of the standalone store at 64 in flight over 10k keys
# (bench/instructions/redis-loop.mjs, run by plain Node), counted by valgrind (callgrind) on a
# private redis-server: (instructions of a server that answered 30k checks - of one that answered
# 10k) / 20k, the warm-up and the function load cancelling out. Only what Redis executes inside
# FCALL is counted (valgrind's --toggle-collect=fcallCommand: the script, the commands it runs and
# turning its result into the reply), not parsing, timers or event-loop turns, whose number moves
# with time. Repeated runs still scatter by up to 20% (cause not found: compare versions over
# several runs, or one callgrind profile of each as the CHANGELOG's figures are); how many checks
# share a call moves with timing too (the loop prints it).
# IN_FLIGHT=1 counts checks sent one at a time (each call one key: the short form).
# Usage: packages/rate-limiter/bench/instructions/redis-server-count.sh (after `pnpm build`);
# needs valgrind, redis-server, redis-cli and the toolchain's Node.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PATH="$here/../../../../.tools/node_modules/.bin:$PATH"
port="${REDIS_COUNT_PORT:-16398}"
count() {
  local dir
  dir="$(mktemp -d)"
  valgrind --tool=callgrind --callgrind-out-file=/dev/null --log-file="$dir/valgrind.log" \
    --toggle-collect=fcallCommand \
    redis-server --port "$port" --save '' --appendonly no --dir "$dir" --logfile "$dir/redis.log" &
  local server=$!
  until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.5; done
  node "$here/redis-loop.mjs" "$1" "redis://127.0.0.1:$port" "${IN_FLIGHT:-64}" | sed 's/^/# /' >&2
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  wait "$server" || true
  sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$dir/valgrind.log"
  rm -rf "$dir"
}
low="$(count 10000)"
high="$(count 30000)"
echo "standalone, ${IN_FLIGHT:-64} in flight: $(((high - low) / 20000)) Redis server instructions per check"

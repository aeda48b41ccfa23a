#!/usr/bin/env bash
# Client instructions per check of the standalone Redis store at 64 in flight over 10k keys
# (bench/instructions/redis-loop.mjs), counted by valgrind (callgrind) with --single-threaded
# --predictable: (instructions of 30k checks - of 10k) / 20k. The process waits on Redis, but a
# count moves little with the machine's load (waiting executes no instructions; how many checks
# share a call does, so the loop prints it). Starts its own redis-server on a spare port.
# Usage: packages/rate-limiter/bench/instructions/redis-count.sh (after `pnpm build`); needs
# valgrind, redis-server and the toolchain's Node.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PATH="$here/../../../../.tools/node_modules/.bin:$PATH"
port="${REDIS_COUNT_PORT:-16399}"
dir="$(mktemp -d)"
redis-server --port "$port" --save '' --appendonly no --dir "$dir" --daemonize yes --pidfile "$dir/redis.pid" >/dev/null
trap 'kill "$(cat "$dir/redis.pid")"; rm -rf "$dir"' EXIT
sleep 0.5
count() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    node --single-threaded --predictable --hash-seed=1 --random-seed=1 "$here/redis-loop.mjs" "$1" "redis://127.0.0.1:$port" 2>&1 |
    sed -n -e 's/.*Collected : \([0-9]*\).*/\1/p' -e 's/^\([0-9]* checks, .*\)/# \1/p'
}
low="$(count 10000)"
high="$(count 30000)"
echo "$low" | grep '^#' ; echo "$high" | grep '^#'
l="$(echo "$low" | grep -v '^#')"
h="$(echo "$high" | grep -v '^#')"
echo "standalone, 64 in flight: $(((h - l) / 20000)) client instructions per check"

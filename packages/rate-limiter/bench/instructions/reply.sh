#!/usr/bin/env bash
# Instructions per reply read on the client (bench/instructions/reply.mjs), counted by valgrind
# (callgrind) with --single-threaded --predictable, so that a count does not move with the
# machine's load: (instructions of 300k replies - of 100k) / 200k, per shape (a batch shape, 32
# keys per reply: of 15k - of 5k, per reply and per key). Run it in a tree
# whose ioredis is 6 (the repo's) or 5 (a copy with a pnpm override, as `scripts/run
# compat-ioredis` makes). Usage: packages/rate-limiter/bench/instructions/reply.sh [shape ...]
# (after `pnpm build`); needs valgrind and the toolchain's Node.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PATH="$here/../../../../.tools/node_modules/.bin:$PATH"
shapes=("$@")
[ ${#shapes[@]} -eq 0 ] && shapes=(array string rlf)
count() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    node --single-threaded --predictable --hash-seed=1 --random-seed=1 "$here/reply.mjs" "$1" "$2" 2>&1 |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
version="$(cd "$here" && node -p 'require("ioredis/package.json").version')"
for shape in "${shapes[@]}"; do
  calls=100000
  case "$shape" in batch-*) calls=5000 ;; esac
  low="$(count "$shape" "$calls")"
  high="$(count "$shape" "$((calls * 3))")"
  per=$(((high - low) / (calls * 2)))
  case "$shape" in
    batch-*) echo "ioredis $version, $shape: $per instructions per reply read, $((per / 32)) per key" ;;
    *) echo "ioredis $version, $shape: $per instructions per reply read" ;;
  esac
done

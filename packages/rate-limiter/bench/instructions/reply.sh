#!/usr/bin/env bash
# Instructions per reply read on the client (bench/instructions/reply.mjs), counted by valgrind
# (callgrind) with --single-threaded --predictable, so that a count does not move with the
# machine's load: (instructions of 300k replies - of 100k) / 200k, per shape. Run it in a tree
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
  low="$(count "$shape" 100000)"
  high="$(count "$shape" 300000)"
  echo "ioredis $version, $shape: $(((high - low) / 200000)) instructions per reply read"
done

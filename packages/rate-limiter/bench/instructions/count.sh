#!/usr/bin/env bash
# Instructions per awaited check of each side of the memory fixed-window comparison, counted by
# valgrind (callgrind) on Node with --single-threaded --predictable and fixed seeds, so that a
# count does not move with the machine's load: (instructions of 3M calls - of 1M calls) / 2M.
# Usage: packages/rate-limiter/bench/instructions/count.sh [side ...] (after `pnpm build`);
# needs valgrind and the toolchain's Node (scripts/run provisions it). Takes ~1 min per side.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PATH="$here/../../../../.tools/node_modules/.bin:$PATH"
sides=("$@")
[ ${#sides[@]} -eq 0 ] && sides=(ours express-rate-limit rate-limiter-flexible reference)
count() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    node --single-threaded --predictable --hash-seed=1 --random-seed=1 "$here/loop.mjs" "$1" "$2" 2>&1 |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
echo "node $(node -v)"
for side in "${sides[@]}"; do
  one=$(count "$side" 1000000)
  three=$(count "$side" 3000000)
  echo "$side $(( (three - one) / 2000000 )) instructions per check"
done

#!/usr/bin/env bash
# Simulated data-cache misses per awaited check of each side of the memory fixed-window
# comparison (valgrind cachegrind, --cache-sim=yes: first-level data cache and last level, sized
# like this machine's), deterministic as count.sh is: (misses of 3M calls - of 1M calls) / 2M.
# A write miss is mostly a new cache line of freshly allocated objects, so the write column
# tracks the bytes a check allocates; reads, the lines of state it visits.
# Usage: packages/rate-limiter/bench/instructions/misses.sh [side ...] (after `pnpm build`); sides as
# in loop.mjs. Takes ~1.5 min per side.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PATH="$here/../../../../.tools/node_modules/.bin:$PATH"
sides=("$@")
[ ${#sides[@]} -eq 0 ] && sides=(ours express-rate-limit rate-limiter-flexible reference)
# Prints "<D refs> <D1 read misses> <D1 write misses>" of one run.
run() {
  valgrind --tool=cachegrind --cache-sim=yes --cachegrind-out-file=/dev/null \
    node --single-threaded --predictable --hash-seed=1 --random-seed=1 "$here/loop.mjs" "$1" "$2" 2>&1 |
    sed -e 's/^==[0-9]*== *//' -e 's/,//g' |
    awk '{ n = 0; for (i = 1; i <= NF; i++) if ($i ~ /^\(?[0-9]+$/) { v = $i; sub(/\(/, "", v); nums[++n] = v } }
         /^D +refs:/ { refs = nums[1] }
         /^D1 +misses:/ { rd = nums[2]; wr = nums[3] }
         END { print refs, rd, wr }'
}
echo "node $(node -v)"
for side in "${sides[@]}"; do
  read -r refs1 rd1 wr1 < <(run "$side" 1000000)
  read -r refs3 rd3 wr3 < <(run "$side" 3000000)
  awk -v side="$side" -v r="$((refs3 - refs1))" -v a="$((rd3 - rd1))" -v b="$((wr3 - wr1))" \
    'BEGIN { printf "%s: %.0f data refs, %.1f D1 read misses, %.1f D1 write misses per check\n", side, r / 2e6, a / 2e6, b / 2e6 }'
done

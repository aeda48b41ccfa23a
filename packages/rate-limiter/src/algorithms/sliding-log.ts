import type { Step } from '../decision.js';
import type { LimitPolicy } from '../policy.js';

/** Sliding log state: admitted requests, oldest first, as parallel arrays of time and cost. */
export interface SlidingLogState {
  times: number[];
  costs: number[];
}

/**
 * Exact sliding log: a request is admitted when the points admitted in `(now − windowMs, now]`
 * plus its cost stay within `limit`. Exact for every sliding window, at the price of one entry
 * per admitted request, so it is meant for small limits (login attempts, OTPs).
 */
export function slidingLog(
  state: SlidingLogState | undefined,
  now: number,
  cost: number,
  policy: LimitPolicy,
): Step<SlidingLogState> {
  const times = state?.times ?? [];
  const costs = state?.costs ?? [];
  // Entries at or before now − windowMs have left the window.
  let first = 0;
  while (first < times.length && times[first]! <= now - policy.windowMs) first += 1;
  const keptTimes = first === 0 ? times.slice() : times.slice(first);
  const keptCosts = first === 0 ? costs.slice() : costs.slice(first);
  let used = 0;
  for (const entryCost of keptCosts) used += entryCost;
  if (used + cost > policy.limit) {
    return {
      decision: {
        name: policy.name,
        windowMs: policy.windowMs,
        allowed: false,
        limit: policy.limit,
        remaining: Math.max(0, policy.limit - used),
        resetMs: resetOf(keptTimes, now, policy.windowMs),
        retryAfterMs: retryOf(keptTimes, keptCosts, used, now, cost, policy),
        delayMs: 0,
      },
      state: { times: keptTimes, costs: keptCosts },
    };
  }
  if (cost > 0) {
    keptTimes.push(now);
    keptCosts.push(cost);
  }
  return {
    decision: {
      name: policy.name,
      windowMs: policy.windowMs,
      allowed: true,
      limit: policy.limit,
      remaining: policy.limit - used - cost,
      resetMs: resetOf(keptTimes, now, policy.windowMs),
      retryAfterMs: 0,
      delayMs: 0,
    },
    state: { times: keptTimes, costs: keptCosts },
  };
}

function resetOf(times: number[], now: number, windowMs: number): number {
  const newest = times.at(-1);
  return newest === undefined ? 0 : newest + windowMs - now;
}

function retryOf(
  times: number[],
  costs: number[],
  used: number,
  now: number,
  cost: number,
  policy: LimitPolicy,
): number {
  if (cost > policy.limit) return resetOf(times, now, policy.windowMs);
  let freed = 0;
  for (let index = 0; index < times.length; index += 1) {
    freed += costs[index]!;
    if (used - freed + cost <= policy.limit) return times[index]! + policy.windowMs - now;
  }
  return resetOf(times, now, policy.windowMs);
}

/** How long sliding log state must be kept after `now`. */
export function slidingLogTtl(state: SlidingLogState, now: number, policy: LimitPolicy): number {
  return resetOf(state.times, now, policy.windowMs);
}

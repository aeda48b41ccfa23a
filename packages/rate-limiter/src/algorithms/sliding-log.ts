import type { Step } from '../decision.js';
import type { LimitPolicy } from '../policy.js';
import { firstInWindow, logResetMs, slidingLogInPlace } from './sliding-log-in-place.js';

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
  // A copy of the entries still in the window, which the in-place step appends to when it admits
  // (a cost-0 check keeps them all; see slidingLogInPlace).
  const first = cost > 0 ? firstInWindow(times, now, policy.windowMs) : 0;
  const next: SlidingLogState = { times: times.slice(first), costs: costs.slice(first) };
  return { decision: slidingLogInPlace(next, now, cost, policy), state: next };
}

/** How long sliding log state must be kept after `now`. */
export function slidingLogTtl(state: SlidingLogState, now: number, policy: LimitPolicy): number {
  return logResetMs(state.times, 0, now, policy.windowMs);
}

import type { LimitPolicy } from '../policy.js';
import type { SlidingLogState } from './sliding-log.js';
import { firstInWindow, logAtLatest } from './sliding-log-in-place.js';

/**
 * Gives back up to `points`, newest entries first, from the entries still inside the window
 * (those that left it are dropped, as a step drops them). Never below an empty log.
 */
export function slidingLogRefund(
  state: SlidingLogState | undefined,
  now: number,
  points: number,
  policy: LimitPolicy,
): SlidingLogState | undefined {
  if (state === undefined) return state;
  const first = firstInWindow(state.times, now, policy.windowMs);
  const times = state.times.slice(first);
  const costs = state.costs.slice(first);
  let left = points;
  while (left > 0 && costs.length > 0) {
    const last = costs.length - 1;
    if (costs[last]! <= left) {
      left -= costs[last]!;
      costs.pop();
      times.pop();
    } else {
      costs[last] = costs[last]! - left;
      left = 0;
    }
  }
  return { times, costs };
}

/** Logs `points` more at `now` even when they do not fit, up to the limit (`remaining` 0). */
export function slidingLogPenalize(
  state: SlidingLogState | undefined,
  now: number,
  points: number,
  policy: LimitPolicy,
): SlidingLogState | undefined {
  const first = state === undefined ? 0 : firstInWindow(state.times, now, policy.windowMs);
  const times = state === undefined ? [] : state.times.slice(first);
  const costs = state === undefined ? [] : state.costs.slice(first);
  let used = 0;
  for (const cost of costs) used += cost;
  const added = Math.min(points, policy.limit - used);
  if (added > 0) logAtLatest(times, costs, now, added);
  return { times, costs };
}

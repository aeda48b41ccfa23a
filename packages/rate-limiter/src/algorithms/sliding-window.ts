import type { Step } from '../decision.js';
import type { LimitPolicy } from '../policy.js';
import {
  currentCountAt,
  newSlidingWindowState,
  previousCountAt,
  slidingWindowInPlace,
} from './sliding-window-in-place.js';
import { countingWindowStart } from './window-start.js';

/** Sliding window counter state: counts of the current aligned window and the one before. */
export interface SlidingWindowState {
  windowStart: number;
  current: number;
  previous: number;
}

/**
 * Sliding window (weighted two-window counter, as Cloudflare describes it): the estimate is
 * `previous × (share of the previous window still inside the sliding window) + current`.
 * Integer arithmetic only (everything is scaled by `windowMs`), so decisions and retry times
 * are exact while `limit × windowMs` is at most 2^53; past it (a limit of
 * `Number.MAX_SAFE_INTEGER` as "unlimited") the current window's count stays exact and the
 * previous window's weight is rounded. It never admits more than `limit` in any aligned window; it assumes the previous
 * window's requests were spread evenly, so use `sliding-log` when that must hold for every
 * sliding window.
 */
export function slidingWindow(
  state: SlidingWindowState | undefined,
  now: number,
  cost: number,
  policy: LimitPolicy,
): Step<SlidingWindowState> {
  const from = state ?? newSlidingWindowState();
  const windowStart = countingWindowStart(from.windowStart, now, policy.windowMs);
  // The counts as they stand in the current window, which the in-place step counts into when it admits.
  const next: SlidingWindowState = {
    windowStart,
    current: currentCountAt(from, windowStart),
    previous: previousCountAt(from, windowStart, policy.windowMs),
  };
  return { decision: slidingWindowInPlace(next, now, cost, policy), state: next };
}

/** How long sliding window state must be kept after `now`. */
export function slidingWindowTtl(state: SlidingWindowState, now: number, policy: LimitPolicy): number {
  return state.windowStart + 2 * policy.windowMs - now;
}

import type { Step } from '../decision.js';
import type { LimitPolicy } from '../policy.js';
import { fixedWindowInPlace } from './fixed-window-in-place.js';
import { countingWindowStart } from './window-start.js';

/** Fixed window state: the window's start (aligned to the epoch) and the points used in it. */
export interface FixedWindowState {
  windowStart: number;
  count: number;
}

/**
 * Fixed window: at most `limit` points per window aligned to multiples of `windowMs`. Cheapest,
 * but a client can spend `2 × limit` across a window boundary.
 */
export function fixedWindow(
  state: FixedWindowState | undefined,
  now: number,
  cost: number,
  policy: LimitPolicy,
): Step<FixedWindowState> {
  const windowStart = countingWindowStart(state?.windowStart ?? Number.NaN, now, policy.windowMs);
  const count = state !== undefined && state.windowStart === windowStart ? state.count : 0;
  // The current window's state, which the in-place step counts into when it admits.
  const next: FixedWindowState = { windowStart, count };
  return { decision: fixedWindowInPlace(next, now, cost, policy), state: next };
}

/** How long fixed window state must be kept after `now`. */
export function fixedWindowTtl(state: FixedWindowState, now: number, policy: LimitPolicy): number {
  return state.windowStart + policy.windowMs - now;
}

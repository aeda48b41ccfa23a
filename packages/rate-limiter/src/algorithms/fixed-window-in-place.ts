import type { Decision } from '../decision.js';
import type { LimitPolicy } from '../policy.js';
import type { FixedWindowState } from './fixed-window.js';
import { countingWindowStart } from './window-start.js';

/**
 * The fixed window step on a mutable record owned by the caller (the memory store's fast path;
 * the pure {@link fixedWindow} runs it on a copy): returns the decision, and when the request is
 * admitted updates `state` in place to the state the pure function returns (a refused request
 * leaves `state` untouched; the pure function then returns a state the store does not keep). A
 * new key passes a fresh {@link newFixedWindowState}. Equality with the pure function is
 * property-tested.
 */
export function fixedWindowInPlace(
  state: FixedWindowState,
  now: number,
  cost: number,
  policy: LimitPolicy,
): Decision {
  const windowMs = policy.windowMs;
  const limit = policy.limit;
  const windowStart = countingWindowStart(state.windowStart, now, windowMs);
  const count = state.windowStart === windowStart ? state.count : 0;
  const resetMs = windowStart + windowMs - now;
  const used = count + cost;
  // The refusal is out of line: this function stays small enough for V8 to inline.
  if (used > limit) return fixedWindowRefusal(policy, count, cost, resetMs);
  state.windowStart = windowStart;
  state.count = used;
  // The whole quota comes back at the window's end, the next point with it: one value for both.
  return fixedWindowAdmitted(policy, used, used > 0 ? resetMs : 0);
}

/**
 * The decision admitting a request that brought its window's count to `used`, `shownMs` before
 * the window's end (0 for a count of 0). Also the memory store's hot path's, so that both paths
 * build one object shape.
 */
export function fixedWindowAdmitted(policy: LimitPolicy, used: number, shownMs: number): Decision {
  const limit = policy.limit;
  return {
    name: policy.name,
    windowMs: policy.windowMs,
    allowed: true,
    limit,
    remaining: limit - used,
    resetMs: shownMs,
    nextMs: shownMs,
    retryAfterMs: 0,
    delayMs: 0,
  };
}

/** The refusal of `cost` points in a window whose count is `count`, ending in `resetMs`. */
function fixedWindowRefusal(policy: LimitPolicy, count: number, cost: number, resetMs: number): Decision {
  const limit = policy.limit;
  return {
    name: policy.name,
    windowMs: policy.windowMs,
    allowed: false,
    limit,
    remaining: Math.max(0, limit - count),
    resetMs: count > 0 ? resetMs : 0,
    // The whole quota comes back at the window's end: the next point with it.
    nextMs: count > 0 ? resetMs : 0,
    // More than the limit never fits, whatever the window: no retry time (see decision.ts).
    retryAfterMs: cost > limit ? Number.POSITIVE_INFINITY : resetMs,
    delayMs: 0,
  };
}

/** State for a key never seen: matches no window, so its count reads as 0 (as `undefined` does). */
export function newFixedWindowState(): FixedWindowState {
  return { windowStart: Number.NaN, count: 0 };
}

import type { Decision } from '../decision.js';
import type { LimitPolicy } from '../policy.js';
import type { SlidingWindowState } from './sliding-window.js';
import { countingWindowStart } from './window-start.js';

/**
 * The sliding window step on a mutable record owned by the caller (the memory store's fast path;
 * the pure {@link slidingWindow} runs it on a copy): returns the decision, and when the request
 * is admitted updates `state` in place to the state the pure function returns (a refused request
 * leaves `state` untouched; the store does not keep the pure function's state then either). A
 * new key passes a fresh {@link newSlidingWindowState}. Equality with the pure function is
 * property-tested.
 */
export function slidingWindowInPlace(
  state: SlidingWindowState,
  now: number,
  cost: number,
  policy: LimitPolicy,
): Decision {
  const window = policy.windowMs;
  const windowStart = countingWindowStart(state.windowStart, now, window);
  const previous = previousCountAt(state, windowStart, window);
  const current = currentCountAt(state, windowStart);
  // Before the window's start only when the clock went back: weighted as at its start.
  const elapsed = Math.max(0, now - windowStart);
  // Scaled by `window`: estimate × window = previous × (window − elapsed) + current × window.
  const previousWeight = previous * (window - elapsed);
  // Compared as previous × (window − elapsed) ≤ (limit − current − cost) × window, not as a sum
  // against limit × window: the counts are subtracted exactly, so with no previous count (a new
  // key, the first window) the decision and `remaining` stay exact even where limit × window is
  // past 2^53 and rounded (a limit of Number.MAX_SAFE_INTEGER as "unlimited", a long odd window).
  if (previousWeight > (policy.limit - current - cost) * window) {
    const remaining = Math.max(0, policy.limit - current - previousPointsOf(previousWeight, window));
    return {
      name: policy.name,
      windowMs: window,
      allowed: false,
      limit: policy.limit,
      remaining,
      resetMs: resetOf(windowStart, window, now, previous, current),
      nextMs: nextOf(windowStart, window, now, previous, current, remaining, policy.limit),
      retryAfterMs: retryOf(windowStart, window, now, previous, current, cost, policy.limit),
      delayMs: 0,
    };
  }
  const used = current + cost;
  state.windowStart = windowStart;
  state.current = used;
  state.previous = previous;
  const remaining = Math.max(0, policy.limit - used - previousPointsOf(previousWeight, window));
  return {
    name: policy.name,
    windowMs: window,
    allowed: true,
    limit: policy.limit,
    remaining,
    resetMs: resetOf(windowStart, window, now, previous, used),
    nextMs: nextOf(windowStart, window, now, previous, used, remaining, policy.limit),
    retryAfterMs: 0,
    delayMs: 0,
  };
}

/**
 * The points the previous window's weight (scaled by `window`) takes from the quota, rounded up:
 * `limit − current − ⌈weight / window⌉` is `⌊(limit × window − weight − current × window) / window⌋`
 * without forming limit × window.
 */
export function previousPointsOf(previousWeight: number, window: number): number {
  return Math.ceil(previousWeight / window);
}

/** The count of the window before the one starting at `windowStart` (0 when `state` is older). */
export function previousCountAt(state: SlidingWindowState, windowStart: number, windowMs: number): number {
  if (state.windowStart === windowStart) return state.previous;
  return state.windowStart === windowStart - windowMs ? state.current : 0;
}

/** The count of the window starting at `windowStart` (0 when `state` is of an earlier one). */
export function currentCountAt(state: SlidingWindowState, windowStart: number): number {
  return state.windowStart === windowStart ? state.current : 0;
}

/** State for a key never seen: matches no window, so both counts read as 0 (as `undefined` does). */
export function newSlidingWindowState(): SlidingWindowState {
  return { windowStart: Number.NaN, current: 0, previous: 0 };
}

/** Time until both windows have slid out, i.e. the full quota is back. */
function resetOf(
  windowStart: number,
  window: number,
  now: number,
  previous: number,
  current: number,
): number {
  if (current > 0) return windowStart + 2 * window - now;
  if (previous > 0) return windowStart + window - now;
  return 0;
}

/**
 * When the weighted count next frees a point: the first instant at which `remaining + 1` points
 * fit (0 when `remaining` is the whole limit: nothing more comes back).
 */
function nextOf(
  windowStart: number,
  window: number,
  now: number,
  previous: number,
  current: number,
  remaining: number,
  limit: number,
): number {
  if (remaining >= limit) return 0;
  return retryOf(windowStart, window, now, previous, current, remaining + 1, limit);
}

/** The first instant at which `cost` more points fit, as a delay from `now` (Infinity: never). */
function retryOf(
  windowStart: number,
  window: number,
  now: number,
  previous: number,
  current: number,
  cost: number,
  limit: number,
): number {
  if (cost > limit) return Number.POSITIVE_INFINITY;
  // Without a previous count nothing frees within this window (beyond 2^53 the weights are
  // inexact, and a quota that seems to fit must not divide by that 0).
  if (current + cost <= limit && previous > 0) {
    // Within this window: wait until previous × (window − e) ≤ (limit − current − cost) × window.
    const room = (limit - current - cost) * window;
    return windowStart + window - fittingSlack(Math.floor(room / previous), previous, room) - now;
  }
  // Next window: its "previous" is our current count, its current count is 0.
  const room = (limit - cost) * window;
  const slack =
    current > 0 ? fittingSlack(Math.min(window, Math.floor(room / current)), current, room) : window;
  return windowStart + 2 * window - slack - now;
}

/**
 * `slack` (the ms of the window left when the cost fits), one less when the step's own comparison,
 * `count × slack > room`, would still refuse there: past 2^53 the quotient is rounded and could
 * come out 1 too big, a retry time 1 ms early (sliding-window-retry-bound.test.ts).
 */
function fittingSlack(slack: number, count: number, room: number): number {
  return count * slack > room ? slack - 1 : slack;
}

import type { Step } from '../decision.js';
import type { LimitPolicy } from '../policy.js';
import { windowStartOf } from './window-start.js';

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
 * are exact. It never admits more than `limit` in any aligned window; it assumes the previous
 * window's requests were spread evenly, so use `sliding-log` when that must hold for every
 * sliding window.
 */
export function slidingWindow(
  state: SlidingWindowState | undefined,
  now: number,
  cost: number,
  policy: LimitPolicy,
): Step<SlidingWindowState> {
  const window = policy.windowMs;
  const windowStart = windowStartOf(now, window);
  let previous = 0;
  let current = 0;
  if (state !== undefined) {
    if (state.windowStart === windowStart) {
      previous = state.previous;
      current = state.current;
    } else if (state.windowStart === windowStart - window) {
      previous = state.current;
    }
  }
  const elapsed = now - windowStart;
  // Scaled by `window`: estimate × window = previous × (window − elapsed) + current × window.
  const previousWeight = previous * (window - elapsed);
  const budget = policy.limit * window;
  if (previousWeight + (current + cost) * window > budget) {
    return {
      decision: {
        name: policy.name,
        windowMs: policy.windowMs,
        allowed: false,
        limit: policy.limit,
        remaining: Math.max(0, Math.floor((budget - previousWeight - current * window) / window)),
        resetMs: resetOf(windowStart, window, now, previous, current),
        retryAfterMs: retryOf(windowStart, window, now, previous, current, cost, policy.limit),
        delayMs: 0,
      },
      state: { windowStart, current, previous },
    };
  }
  const used = current + cost;
  return {
    decision: {
      name: policy.name,
      windowMs: policy.windowMs,
      allowed: true,
      limit: policy.limit,
      remaining: Math.floor((budget - previousWeight - used * window) / window),
      resetMs: resetOf(windowStart, window, now, previous, used),
      retryAfterMs: 0,
      delayMs: 0,
    },
    state: { windowStart, current: used, previous },
  };
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

/** The first instant at which `cost` more points fit, as a delay from `now`. */
function retryOf(
  windowStart: number,
  window: number,
  now: number,
  previous: number,
  current: number,
  cost: number,
  limit: number,
): number {
  if (cost > limit) return windowStart + 2 * window - now;
  if (current + cost <= limit) {
    // Within this window: wait until previous × (window − e) ≤ (limit − current − cost) × window.
    const slack = Math.floor(((limit - current - cost) * window) / previous);
    return windowStart + window - slack - now;
  }
  // Next window: its "previous" is our current count, its current count is 0.
  const slack = current > 0 ? Math.floor(((limit - cost) * window) / current) : window;
  return windowStart + 2 * window - Math.min(window, slack) - now;
}

/** How long sliding window state must be kept after `now`. */
export function slidingWindowTtl(state: SlidingWindowState, now: number, policy: LimitPolicy): number {
  return state.windowStart + 2 * policy.windowMs - now;
}

import type { Step } from '../decision.js';
import type { LimitPolicy } from '../policy.js';
import { windowStartOf } from './window-start.js';

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
  const windowStart = windowStartOf(now, policy.windowMs);
  const count = state !== undefined && state.windowStart === windowStart ? state.count : 0;
  const resetMs = windowStart + policy.windowMs - now;
  if (count + cost > policy.limit) {
    return {
      decision: {
        name: policy.name,
        windowMs: policy.windowMs,
        allowed: false,
        limit: policy.limit,
        remaining: Math.max(0, policy.limit - count),
        resetMs: count > 0 ? resetMs : 0,
        retryAfterMs: resetMs,
        delayMs: 0,
      },
      state: { windowStart, count },
    };
  }
  const used = count + cost;
  return {
    decision: {
      name: policy.name,
      windowMs: policy.windowMs,
      allowed: true,
      limit: policy.limit,
      remaining: policy.limit - used,
      resetMs: used > 0 ? resetMs : 0,
      retryAfterMs: 0,
      delayMs: 0,
    },
    state: { windowStart, count: used },
  };
}

/** How long fixed window state must be kept after `now`. */
export function fixedWindowTtl(state: FixedWindowState, now: number, policy: LimitPolicy): number {
  return state.windowStart + policy.windowMs - now;
}

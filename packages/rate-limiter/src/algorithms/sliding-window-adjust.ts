import type { LimitPolicy } from '../policy.js';
import type { SlidingWindowState } from './sliding-window.js';
import { currentCountAt, previousCountAt, previousPointsOf } from './sliding-window-in-place.js';
import { countingWindowStart } from './window-start.js';

/**
 * Gives back up to `points` counted in the current aligned window (never below 0). The previous
 * window's count is history the estimate decays on its own: it is not refunded.
 */
export function slidingWindowRefund(
  state: SlidingWindowState | undefined,
  now: number,
  points: number,
  policy: LimitPolicy,
): SlidingWindowState | undefined {
  // As in a check, a clock that went back counts in the state's later window.
  if (
    state === undefined ||
    state.windowStart !== countingWindowStart(state.windowStart, now, policy.windowMs)
  )
    return state;
  return { ...state, current: Math.max(0, state.current - points) };
}

/**
 * Counts `points` more in the current window even when they do not fit, up to where the
 * weighted estimate reaches the limit (`remaining` 0, so a cost-0 check still passes).
 */
export function slidingWindowPenalize(
  state: SlidingWindowState | undefined,
  now: number,
  points: number,
  policy: LimitPolicy,
): SlidingWindowState | undefined {
  const window = policy.windowMs;
  const windowStart = countingWindowStart(state?.windowStart ?? Number.NaN, now, window);
  const current = state === undefined ? 0 : currentCountAt(state, windowStart);
  const previous = state === undefined ? 0 : previousCountAt(state, windowStart, window);
  // Scaled by `window`, as in the step: the most `current` can be with the estimate within the limit.
  const elapsed = Math.max(0, now - windowStart);
  // Without forming limit × window, which is rounded past 2^53 (see previousPointsOf).
  const ceiling = policy.limit - previousPointsOf(previous * (window - elapsed), window);
  return { windowStart, previous, current: Math.max(current, Math.min(current + points, ceiling)) };
}

import type { LimitPolicy } from '../policy.js';
import type { FixedWindowState } from './fixed-window.js';
import { countingWindowStart } from './window-start.js';

/**
 * Gives back up to `points` counted in the current window (never below 0). Points counted in an
 * earlier window are gone with it: a refund after the window moved on changes nothing. As in a
 * check, a clock that went back counts in the state's later window.
 */
export function fixedWindowRefund(
  state: FixedWindowState | undefined,
  now: number,
  points: number,
  policy: LimitPolicy,
): FixedWindowState | undefined {
  if (
    state === undefined ||
    state.windowStart !== countingWindowStart(state.windowStart, now, policy.windowMs)
  )
    return state;
  return { windowStart: state.windowStart, count: Math.max(0, state.count - points) };
}

/**
 * Counts `points` more in the current window even when they do not fit, up to the limit (the
 * floor of `remaining` is 0); a count already at or over the limit stays as it is.
 */
export function fixedWindowPenalize(
  state: FixedWindowState | undefined,
  now: number,
  points: number,
  policy: LimitPolicy,
): FixedWindowState | undefined {
  const windowStart = countingWindowStart(state?.windowStart ?? Number.NaN, now, policy.windowMs);
  const count = state !== undefined && state.windowStart === windowStart ? state.count : 0;
  return { windowStart, count: Math.max(count, Math.min(policy.limit, count + points)) };
}

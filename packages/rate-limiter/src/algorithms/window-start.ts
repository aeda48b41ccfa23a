import { isBeyondClockStep } from './clock-step.js';

/**
 * The window a request at `now` counts in, given the window `stateStart` its key's state is of
 * (NaN for none): the window holding `now`, unless the state is of a later one. A clock that went
 * back (another server's after a failover, an NTP step) then counts in the state's window, as it
 * stands: counting in the earlier window (from 0) would admit up to a whole limit more, and
 * overwrite the later window's count. A state further ahead than any clock step back
 * (`maxClockStepBackMs`) is not of a clock to trust: the request counts in its own window.
 */
export function countingWindowStart(stateStart: number, now: number, windowMs: number): number {
  const start = windowStartOf(now, windowMs);
  // Not Math.max: a key never seen has NaN, which must lose.
  if (stateStart > start && !isBeyondClockStep(stateStart, now)) return stateStart;
  return start;
}

/** The last window computed by {@link windowStartOf}: `%` on a millisecond timestamp is a slow fmod. */
let memoWindowMs = 0;
let memoStart = 0;
let memoEnd = 0;

/**
 * `now - (now % windowMs)` (the start of the fixed window holding `now`), memoised for the last
 * window: every check within the same window skips the division. Only non-negative times are
 * memoised (for them the window holding `now` is `[start, start + windowMs)`). The memo is
 * invisible: the result is always exactly the expression's, so callers stay pure functions.
 */
export function windowStartOf(now: number, windowMs: number): number {
  if (windowMs === memoWindowMs && now >= memoStart && now < memoEnd) return memoStart;
  const start = now - (now % windowMs);
  if (now >= 0) {
    memoWindowMs = windowMs;
    memoStart = start;
    memoEnd = start + windowMs;
  }
  return start;
}

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

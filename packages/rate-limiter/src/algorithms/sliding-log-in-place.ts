import type { Decision } from '../decision.js';
import type { LimitPolicy } from '../policy.js';
import { isBeyondClockStep } from './clock-step.js';
import type { SlidingLogState } from './sliding-log.js';

/**
 * The sliding log step on a mutable record owned by the caller (the memory store's fast path;
 * the pure {@link slidingLog} runs it on a copy): returns the decision, and when the request is
 * admitted updates `state` in place to the state the pure function returns (entries that left
 * the window dropped, the request appended). A refused request leaves `state` untouched, expired
 * entries included; the store does not keep the pure function's state then either. A new key
 * passes a fresh {@link newSlidingLogState}. Equality with the pure function is property-tested.
 */
export function slidingLogInPlace(
  state: SlidingLogState,
  now: number,
  cost: number,
  policy: LimitPolicy,
): Decision {
  const { times, costs } = state;
  const first = firstInWindow(times, now, policy.windowMs);
  let used = 0;
  for (let index = first; index < costs.length; index += 1) used += costs[index]!;
  if (used + cost > policy.limit) {
    return {
      name: policy.name,
      windowMs: policy.windowMs,
      allowed: false,
      limit: policy.limit,
      remaining: Math.max(0, policy.limit - used),
      resetMs: logResetMs(times, first, now, policy.windowMs),
      nextMs: logNextMs(times, first, now, policy.windowMs),
      retryAfterMs: retryOf(times, costs, first, used, now, cost, policy),
      delayMs: 0,
    };
  }
  // A cost-0 check logs nothing, so it leaves the log as it is: dropping the entries that left its
  // window would forget them for a later request whose clock went back to before this check's
  // time, which is logged where they still count (see logAtLatest), and it would admit more than
  // the limit there. An admitted request drops them: it is logged at this time or later.
  if (cost > 0) {
    if (first > 0) {
      dropFirst(times, first);
      dropFirst(costs, first);
    }
    logAtLatest(times, costs, now, cost);
  }
  return {
    name: policy.name,
    windowMs: policy.windowMs,
    allowed: true,
    limit: policy.limit,
    remaining: policy.limit - used - cost,
    resetMs: logResetMs(times, cost > 0 ? 0 : first, now, policy.windowMs),
    nextMs: logNextMs(times, cost > 0 ? 0 : first, now, policy.windowMs),
    retryAfterMs: 0,
    delayMs: 0,
  };
}

/**
 * The index of the first entry still in the window: those at or before `now − windowMs` have left
 * it. A log whose newest entry is further ahead than any clock step back is not of a clock to
 * trust: all its entries are past (the log starts afresh; see {@link isBeyondClockStep}).
 */
export function firstInWindow(times: readonly number[], now: number, windowMs: number): number {
  if (times.length > 0 && isBeyondClockStep(times[times.length - 1]!, now)) return times.length;
  let first = 0;
  while (first < times.length && times[first]! <= now - windowMs) first += 1;
  return first;
}

/** Time until the newest of the entries from `first` on leaves the window (0 when there are none). */
export function logResetMs(times: readonly number[], first: number, now: number, windowMs: number): number {
  return first < times.length ? times[times.length - 1]! + windowMs - now : 0;
}

/**
 * Time until the oldest of the entries from `first` on leaves the window, giving its points back
 * (0 when there are none: the whole limit is available).
 */
export function logNextMs(times: readonly number[], first: number, now: number, windowMs: number): number {
  return first < times.length ? times[first]! + windowMs - now : 0;
}

/**
 * Logs `cost` at `now`, or at the newest entry's time when the clock went back (another server's
 * after a failover, an NTP step): logged at its own earlier time, the request would leave the
 * window before requests admitted ahead of it, handing out their points early. The log stays in
 * time order, which the window scans and the reset (the newest entry) rely on.
 */
export function logAtLatest(times: number[], costs: number[], now: number, cost: number): void {
  const newest = times.length > 0 ? times[times.length - 1]! : now;
  times.push(Math.max(newest, now));
  costs.push(cost);
}

/** State for a key never seen: an empty log (as `undefined` reads). */
export function newSlidingLogState(): SlidingLogState {
  return { times: [], costs: [] };
}

/**
 * Removes the first `count` elements without allocating: `splice` returns a new array of them,
 * and `copyWithin` and `shift` allocate on every call too (a loop does not).
 */
function dropFirst(values: number[], count: number): void {
  for (let index = count; index < values.length; index += 1) values[index - count] = values[index]!;
  values.length -= count;
}

/** The first instant at which `cost` more points fit, as a delay from `now` (Infinity: never). */
function retryOf(
  times: readonly number[],
  costs: readonly number[],
  first: number,
  used: number,
  now: number,
  cost: number,
  policy: LimitPolicy,
): number {
  if (cost > policy.limit) return Number.POSITIVE_INFINITY;
  let freed = 0;
  for (let index = first; index < times.length; index += 1) {
    freed += costs[index]!;
    if (used - freed + cost <= policy.limit) return times[index]! + policy.windowMs - now;
  }
  return logResetMs(times, first, now, policy.windowMs);
}

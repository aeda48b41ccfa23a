import type { Decision } from '../decision.js';
import { capacityOf, type LimitPolicy } from '../policy.js';
import { bucketTime } from './bucket-time.js';
import { isBeyondClockStep } from './clock-step.js';
import type { LeakyBucketState } from './leaky-bucket.js';

/**
 * The leaky bucket (GCRA) step on a mutable record owned by the caller (the memory store's fast
 * path; the pure {@link leakyBucket} runs it on a copy): returns the decision, and when the
 * request is admitted updates `state` in place to the state the pure function returns (a refused
 * request leaves `state` untouched; the store does not keep the pure function's state then
 * either). A new key passes a fresh {@link newLeakyBucketState}. Equality with the pure function
 * is property-tested.
 */
export function leakyBucketInPlace(
  state: LeakyBucketState,
  now: number,
  cost: number,
  policy: LimitPolicy,
): Decision {
  const window = policy.windowMs;
  const capacity = capacityOf(policy) * window;
  const queue = (policy.queueMaxDelayMs ?? 0) * policy.limit;
  const level = levelAt(state, now, policy);
  // The bucket's time: a clock that went back leaks from where the bucket stands, not from `now`.
  const at = bucketTime(state.updatedAt, now);
  const ahead = at - now;
  const after = level + cost * window;
  // A cost of 0 adds nothing to the queue: it has nothing to wait for. A queued request waits for
  // the leak of what is above the capacity, from now, even when the bucket's time is ahead of the
  // clock (it went back): the requests queued before it were released after their own delays
  // from checks made before this one, so one released a leak after now is still a leak after
  // them (the rate holds), and waiting out the lead as well would hold it, or with
  // queueMaxDelayMs refuse it, for as long as the clock stepped back. The bucket leaks nothing
  // until the clock catches up with its time, so it stays as full as it was or fuller than a
  // bucket of that real time (a queue that fills meanwhile is refused, with an exact retry).
  const delayMs = cost > 0 && after > capacity ? Math.ceil((after - capacity) / policy.limit) : 0;
  if (after > capacity + queue) {
    const remaining = Math.max(0, Math.floor((capacity - level) / window));
    return {
      name: policy.name,
      windowMs: window,
      allowed: false,
      limit: capacityOf(policy),
      rate: policy.limit,
      remaining,
      resetMs: Math.ceil(level / policy.limit) + ahead,
      nextMs: nextConformingMs(level, remaining, ahead, policy),
      // More than an empty bucket and its queue hold never fits: no retry time (see decision.ts).
      retryAfterMs:
        cost * window > capacity + queue
          ? Number.POSITIVE_INFINITY
          : Math.ceil((after - capacity - queue) / policy.limit) + ahead,
      delayMs: 0,
    };
  }
  state.level = after;
  state.updatedAt = at;
  const remaining = Math.max(0, Math.floor((capacity - after) / window));
  return {
    name: policy.name,
    windowMs: window,
    allowed: true,
    limit: capacityOf(policy),
    rate: policy.limit,
    remaining,
    resetMs: Math.ceil(after / policy.limit) + ahead,
    nextMs: nextConformingMs(after, remaining, ahead, policy),
    retryAfterMs: 0,
    delayMs,
  };
}

/**
 * Time until one more request than `remaining` conforms without waiting: the bucket has leaked
 * down to `capacity − (remaining + 1)` requests (0 when it is empty). A queue above the capacity
 * leaks first. The leak starts at the bucket's time, `ahead` of now when the clock went back.
 */
function nextConformingMs(level: number, remaining: number, ahead: number, policy: LimitPolicy): number {
  if (level <= 0) return 0;
  const room = (capacityOf(policy) - remaining - 1) * policy.windowMs;
  return Math.ceil((level - room) / policy.limit) + ahead;
}

/** The bucket's level (scaled by `windowMs`) at `now`: what has leaked since `updatedAt` is gone. */
export function levelAt(state: LeakyBucketState, now: number, policy: LimitPolicy): number {
  // A bucket of a clock that was far ahead starts afresh, empty (as bucketTime moves it to `now`).
  if (isBeyondClockStep(state.updatedAt, now)) return 0;
  // A clock that went back (another server's) leaks nothing rather than filling.
  const elapsed = Math.max(0, now - state.updatedAt);
  return Math.max(0, state.level - elapsed * policy.limit);
}

/**
 * State for a key never seen: an empty bucket (as `undefined` reads), of no time, so that a check
 * at any time (even one before `_now`, the clock having gone back) counts at its own time.
 */
export function newLeakyBucketState(_now: number): LeakyBucketState {
  return { level: 0, updatedAt: Number.NEGATIVE_INFINITY };
}

import type { Decision } from '../decision.js';
import { capacityOf, type LimitPolicy } from '../policy.js';
import { bucketTime } from './bucket-time.js';
import { isBeyondClockStep } from './clock-step.js';
import type { TokenBucketState } from './token-bucket.js';

/**
 * The token bucket step on a mutable record owned by the caller (the memory store's fast path;
 * the pure {@link tokenBucket} runs it on a copy): returns the decision, and when the request is
 * admitted updates `state` in place to the state the pure function returns (a refused request
 * leaves `state` untouched; the store does not keep the pure function's state then either). A
 * new key passes a fresh {@link newTokenBucketState}. Equality with the pure function is
 * property-tested.
 */
export function tokenBucketInPlace(
  state: TokenBucketState,
  now: number,
  cost: number,
  policy: LimitPolicy,
): Decision {
  const window = policy.windowMs;
  const capacity = capacityOf(policy);
  const full = capacity * window;
  const tokens = tokensAt(state, now, policy);
  // The bucket's time: a clock that went back refills from where the bucket stands, not from `now`.
  const at = bucketTime(state.updatedAt, now);
  const ahead = at - now;
  const needed = cost * window;
  if (needed > tokens) {
    const remaining = Math.floor(tokens / window);
    return {
      name: policy.name,
      windowMs: window,
      allowed: false,
      limit: capacity,
      rate: policy.limit,
      remaining,
      resetMs: Math.ceil((full - tokens) / policy.limit) + ahead,
      nextMs: nextTokenMs(tokens, remaining, ahead, policy),
      // More than a full bucket never fits: no retry time (see decision.ts).
      retryAfterMs:
        needed > full ? Number.POSITIVE_INFINITY : Math.ceil((needed - tokens) / policy.limit) + ahead,
      delayMs: 0,
    };
  }
  const left = tokens - needed;
  state.tokens = left;
  state.updatedAt = at;
  const remaining = Math.floor(left / window);
  return {
    name: policy.name,
    windowMs: window,
    allowed: true,
    limit: capacity,
    rate: policy.limit,
    remaining,
    resetMs: Math.ceil((full - left) / policy.limit) + ahead,
    nextMs: nextTokenMs(left, remaining, ahead, policy),
    retryAfterMs: 0,
    delayMs: 0,
  };
}

/**
 * Time until the next whole token: the bucket holds `remaining + 1` (0 when it is full). Refill
 * starts at the bucket's time, `ahead` of now when the clock went back.
 */
function nextTokenMs(tokens: number, remaining: number, ahead: number, policy: LimitPolicy): number {
  if (remaining >= capacityOf(policy)) return 0;
  return Math.ceil(((remaining + 1) * policy.windowMs - tokens) / policy.limit) + ahead;
}

/** The tokens (scaled by `windowMs`) in the bucket at `now`: refilled since `updatedAt`, capped. */
export function tokensAt(state: TokenBucketState, now: number, policy: LimitPolicy): number {
  // A bucket of a clock that was far ahead starts afresh, full (as bucketTime moves it to `now`).
  if (isBeyondClockStep(state.updatedAt, now)) return capacityOf(policy) * policy.windowMs;
  // A clock that went back (another server's) refills nothing rather than draining.
  const elapsed = Math.max(0, now - state.updatedAt);
  return Math.min(capacityOf(policy) * policy.windowMs, state.tokens + elapsed * policy.limit);
}

/**
 * State for a key never seen: a full bucket (as `undefined` reads), of no time, so that a check
 * at any time (even one before `_now`, the clock having gone back) counts at its own time.
 */
export function newTokenBucketState(_now: number, policy: LimitPolicy): TokenBucketState {
  return { tokens: capacityOf(policy) * policy.windowMs, updatedAt: Number.NEGATIVE_INFINITY };
}

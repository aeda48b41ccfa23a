import type { Step } from '../decision.js';
import { capacityOf, type LimitPolicy } from '../policy.js';
import { bucketTime } from './bucket-time.js';
import { newTokenBucketState, tokenBucketInPlace, tokensAt } from './token-bucket-in-place.js';

/**
 * Token bucket state. `tokens` is scaled by `windowMs` (one token = `windowMs` units) so that
 * refill, which adds `limit` units per millisecond, stays in exact integer arithmetic.
 */
export interface TokenBucketState {
  tokens: number;
  updatedAt: number;
}

/**
 * Token bucket: holds up to `burst` tokens (default `limit`), refilled continuously at
 * `limit / windowMs` per millisecond; a request takes `cost` tokens. Allows bursts up to the
 * capacity, then a steady rate.
 */
export function tokenBucket(
  state: TokenBucketState | undefined,
  now: number,
  cost: number,
  policy: LimitPolicy,
): Step<TokenBucketState> {
  const from = state ?? newTokenBucketState(now, policy);
  // The bucket as it stands at `now`, which the in-place step takes tokens from when it admits.
  const next: TokenBucketState = {
    tokens: tokensAt(from, now, policy),
    updatedAt: bucketTime(from.updatedAt, now),
  };
  return { decision: tokenBucketInPlace(next, now, cost, policy), state: next };
}

/** How long token bucket state must be kept: until the bucket is full again. */
export function tokenBucketTtl(state: TokenBucketState, now: number, policy: LimitPolicy): number {
  const full = capacityOf(policy) * policy.windowMs;
  return Math.ceil((full - state.tokens) / policy.limit) - (now - state.updatedAt);
}

import { capacityOf, type LimitPolicy } from '../policy.js';
import { bucketTime } from './bucket-time.js';
import type { TokenBucketState } from './token-bucket.js';
import { tokensAt } from './token-bucket-in-place.js';

/** Puts up to `points` tokens back, never beyond a full bucket (what refilled meanwhile counts). */
export function tokenBucketRefund(
  state: TokenBucketState | undefined,
  now: number,
  points: number,
  policy: LimitPolicy,
): TokenBucketState | undefined {
  if (state === undefined) return state;
  const full = capacityOf(policy) * policy.windowMs;
  // As in a check, a clock that went back does not move the bucket's time back.
  const tokens = Math.min(full, tokensAt(state, now, policy) + points * policy.windowMs);
  return { tokens, updatedAt: bucketTime(state.updatedAt, now) };
}

/** Takes `points` tokens even when the bucket holds fewer, down to an empty bucket (never below). */
export function tokenBucketPenalize(
  state: TokenBucketState | undefined,
  now: number,
  points: number,
  policy: LimitPolicy,
): TokenBucketState | undefined {
  if (state === undefined)
    return { tokens: Math.max(0, (capacityOf(policy) - points) * policy.windowMs), updatedAt: now };
  const tokens = tokensAt(state, now, policy);
  return {
    tokens: Math.max(0, tokens - points * policy.windowMs),
    updatedAt: bucketTime(state.updatedAt, now),
  };
}

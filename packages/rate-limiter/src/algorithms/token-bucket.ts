import type { Step } from '../decision.js';
import { capacityOf, type LimitPolicy } from '../policy.js';

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
  const window = policy.windowMs;
  const full = capacityOf(policy) * window;
  let tokens = full;
  if (state !== undefined) {
    // A clock that went back (another server's) refills nothing rather than draining.
    const elapsed = Math.max(0, now - state.updatedAt);
    tokens = Math.min(full, state.tokens + elapsed * policy.limit);
  }
  const needed = cost * window;
  if (needed > tokens) {
    return {
      decision: {
        name: policy.name,
        windowMs: policy.windowMs,
        allowed: false,
        limit: capacityOf(policy),
        remaining: Math.floor(tokens / window),
        resetMs: Math.ceil((full - tokens) / policy.limit),
        retryAfterMs:
          needed > full
            ? Math.ceil((full - tokens) / policy.limit)
            : Math.ceil((needed - tokens) / policy.limit),
        delayMs: 0,
      },
      state: { tokens, updatedAt: now },
    };
  }
  const left = tokens - needed;
  return {
    decision: {
      name: policy.name,
      windowMs: policy.windowMs,
      allowed: true,
      limit: capacityOf(policy),
      remaining: Math.floor(left / window),
      resetMs: Math.ceil((full - left) / policy.limit),
      retryAfterMs: 0,
      delayMs: 0,
    },
    state: { tokens: left, updatedAt: now },
  };
}

/** How long token bucket state must be kept: until the bucket is full again. */
export function tokenBucketTtl(state: TokenBucketState, now: number, policy: LimitPolicy): number {
  const full = capacityOf(policy) * policy.windowMs;
  return Math.ceil((full - state.tokens) / policy.limit) - (now - state.updatedAt);
}

import type { Step } from '../decision.js';
import { capacityOf, type LimitPolicy } from '../policy.js';

/**
 * Leaky bucket state in GCRA's continuous-state form (ITU-T I.371): the bucket's `level`
 * at `updatedAt`, scaled by `windowMs` (one request = `windowMs` units) so that the leak of
 * `limit` units per millisecond stays in exact integer arithmetic. It is equivalent to GCRA's
 * theoretical arrival time: `TAT = updatedAt + level / limit`.
 */
export interface LeakyBucketState {
  level: number;
  updatedAt: number;
}

/**
 * Leaky bucket as a meter (GCRA): the bucket holds `burst` requests (default `limit`) and
 * leaks `limit / windowMs` per millisecond; a request that would overflow it is refused. With
 * `queueMaxDelayMs` it becomes a queue: an overflowing request is admitted with `delayMs`, the
 * time until its turn, so the output is a smooth `limit / windowMs`, as long as that delay
 * stays within `queueMaxDelayMs`.
 */
export function leakyBucket(
  state: LeakyBucketState | undefined,
  now: number,
  cost: number,
  policy: LimitPolicy,
): Step<LeakyBucketState> {
  const window = policy.windowMs;
  const capacity = capacityOf(policy) * window;
  const queue = (policy.queueMaxDelayMs ?? 0) * policy.limit;
  let level = 0;
  if (state !== undefined) {
    const elapsed = Math.max(0, now - state.updatedAt);
    level = Math.max(0, state.level - elapsed * policy.limit);
  }
  const after = level + cost * window;
  if (after > capacity + queue) {
    return {
      decision: {
        name: policy.name,
        windowMs: policy.windowMs,
        allowed: false,
        limit: capacityOf(policy),
        remaining: Math.max(0, Math.floor((capacity - level) / window)),
        resetMs: Math.ceil(level / policy.limit),
        retryAfterMs:
          cost * window > capacity + queue
            ? Math.ceil(level / policy.limit)
            : Math.ceil((after - capacity - queue) / policy.limit),
        delayMs: 0,
      },
      state: { level, updatedAt: now },
    };
  }
  return {
    decision: {
      name: policy.name,
      windowMs: policy.windowMs,
      allowed: true,
      limit: capacityOf(policy),
      remaining: Math.max(0, Math.floor((capacity - after) / window)),
      resetMs: Math.ceil(after / policy.limit),
      retryAfterMs: 0,
      delayMs: after > capacity ? Math.ceil((after - capacity) / policy.limit) : 0,
    },
    state: { level: after, updatedAt: now },
  };
}

/** How long leaky bucket state must be kept: until the bucket is empty. */
export function leakyBucketTtl(state: LeakyBucketState, now: number, policy: LimitPolicy): number {
  return Math.ceil(state.level / policy.limit) - (now - state.updatedAt);
}

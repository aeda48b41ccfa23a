import type { Step } from '../decision.js';
import type { LimitPolicy } from '../policy.js';
import { bucketTime } from './bucket-time.js';
import { leakyBucketInPlace, levelAt, newLeakyBucketState } from './leaky-bucket-in-place.js';

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
  const from = state ?? newLeakyBucketState(now);
  // The bucket as it stands at `now`, which the in-place step pours into when it admits.
  const next: LeakyBucketState = {
    level: levelAt(from, now, policy),
    updatedAt: bucketTime(from.updatedAt, now),
  };
  return { decision: leakyBucketInPlace(next, now, cost, policy), state: next };
}

/** How long leaky bucket state must be kept: until the bucket is empty. */
export function leakyBucketTtl(state: LeakyBucketState, now: number, policy: LimitPolicy): number {
  return Math.ceil(state.level / policy.limit) - (now - state.updatedAt);
}

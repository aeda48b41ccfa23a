import { capacityOf, type LimitPolicy } from '../policy.js';
import { bucketTime } from './bucket-time.js';
import type { LeakyBucketState } from './leaky-bucket.js';
import { levelAt } from './leaky-bucket-in-place.js';

/** Drains up to `points` from the bucket, never below empty (what leaked meanwhile counts). */
export function leakyBucketRefund(
  state: LeakyBucketState | undefined,
  now: number,
  points: number,
  policy: LimitPolicy,
): LeakyBucketState | undefined {
  if (state === undefined) return state;
  // As in a check, a clock that went back does not move the bucket's time back.
  const level = Math.max(0, levelAt(state, now, policy) - points * policy.windowMs);
  return { level, updatedAt: bucketTime(state.updatedAt, now) };
}

/**
 * Pours `points` in even when they overflow, up to the bucket's capacity (`remaining` 0). The
 * queue beyond it is for admitted requests that wait: a penalty never queues.
 */
export function leakyBucketPenalize(
  state: LeakyBucketState | undefined,
  now: number,
  points: number,
  policy: LimitPolicy,
): LeakyBucketState | undefined {
  const level = state === undefined ? 0 : levelAt(state, now, policy);
  const capacity = capacityOf(policy) * policy.windowMs;
  const updatedAt = state === undefined ? now : bucketTime(state.updatedAt, now);
  return { level: Math.max(level, Math.min(capacity, level + points * policy.windowMs)), updatedAt };
}

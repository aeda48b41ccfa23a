import type { Step } from '../decision.js';
import type { AlgorithmName, LimitPolicy } from '../policy.js';
import { fixedWindow, fixedWindowTtl } from './fixed-window.js';
import { leakyBucket, leakyBucketTtl } from './leaky-bucket.js';
import { slidingLog, slidingLogTtl } from './sliding-log.js';
import { slidingWindow, slidingWindowTtl } from './sliding-window.js';
import { tokenBucket, tokenBucketTtl } from './token-bucket.js';

/** A pure algorithm: `(state, now, cost, policy) → (decision, state)`, plus how long to keep state. */
export interface Algorithm<State = unknown> {
  step(state: State | undefined, now: number, cost: number, policy: LimitPolicy): Step<State>;
  ttlMs(state: State, now: number, policy: LimitPolicy): number;
}

/** Every algorithm by name. */
export const algorithms: Record<AlgorithmName, Algorithm> = {
  'fixed-window': { step: fixedWindow, ttlMs: fixedWindowTtl } as Algorithm,
  'sliding-window': { step: slidingWindow, ttlMs: slidingWindowTtl } as Algorithm,
  'sliding-log': { step: slidingLog, ttlMs: slidingLogTtl } as Algorithm,
  'token-bucket': { step: tokenBucket, ttlMs: tokenBucketTtl } as Algorithm,
  'leaky-bucket': { step: leakyBucket, ttlMs: leakyBucketTtl } as Algorithm,
};

import type { Decision, Step } from '../decision.js';
import { type AlgorithmName, capacityOf, type LimitPolicy } from '../policy.js';
import { fixedWindow, fixedWindowTtl } from './fixed-window.js';
import { fixedWindowPenalize, fixedWindowRefund } from './fixed-window-adjust.js';
import { fixedWindowInPlace, newFixedWindowState } from './fixed-window-in-place.js';
import { leakyBucket, leakyBucketTtl } from './leaky-bucket.js';
import { leakyBucketPenalize, leakyBucketRefund } from './leaky-bucket-adjust.js';
import { leakyBucketInPlace, newLeakyBucketState } from './leaky-bucket-in-place.js';
import { slidingLog, slidingLogTtl } from './sliding-log.js';
import { slidingLogPenalize, slidingLogRefund } from './sliding-log-adjust.js';
import { newSlidingLogState, slidingLogInPlace } from './sliding-log-in-place.js';
import { slidingWindow, slidingWindowTtl } from './sliding-window.js';
import { slidingWindowPenalize, slidingWindowRefund } from './sliding-window-adjust.js';
import { newSlidingWindowState, slidingWindowInPlace } from './sliding-window-in-place.js';
import { tokenBucket, tokenBucketTtl } from './token-bucket.js';
import { tokenBucketPenalize, tokenBucketRefund } from './token-bucket-adjust.js';
import { newTokenBucketState, tokenBucketInPlace } from './token-bucket-in-place.js';

/**
 * The largest cost `policy` admits at all: its capacity, plus what a queueing leaky bucket can
 * delay. Every algorithm refuses a larger cost whatever the key's state, with `retryAfterMs`
 * Infinity (and admits this one on an unused key); property-tested.
 */
export function maxCostOf(policy: LimitPolicy): number {
  const capacity = capacityOf(policy);
  if (policy.algorithm !== 'leaky-bucket' || policy.queueMaxDelayMs === undefined) return capacity;
  // Admitted when cost × windowMs ≤ capacity × windowMs + queueMaxDelayMs × limit (the step's units).
  return Math.floor((capacity * policy.windowMs + policy.queueMaxDelayMs * policy.limit) / policy.windowMs);
}

/** The field only a state of each algorithm has (a number; the sliding log's is an array). */
const stateField: Record<AlgorithmName, string> = {
  'fixed-window': 'count',
  'sliding-window': 'current',
  'sliding-log': 'times',
  'token-bucket': 'tokens',
  'leaky-bucket': 'level',
};

/**
 * `state` when it is a state of `algorithm`, else `undefined` (a key never seen): a state another
 * algorithm wrote under the same key (a store shared outside the limiter's namespaces) is read as
 * absent, never as NaN counts or a throw.
 */
export function stateOf(algorithm: AlgorithmName, state: unknown): unknown {
  if (state === undefined) return undefined;
  const value = (state as Record<string, unknown>)[stateField[algorithm]];
  return (algorithm === 'sliding-log' ? Array.isArray(value) : typeof value === 'number') ? state : undefined;
}

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

/**
 * An algorithm's step on a mutable state record that the caller owns and keeps (the memory
 * store's single-limit path), so a check allocates nothing but its decision. Each one computes
 * what the pure {@link Algorithm.step} returns: the pure steps run it on a copy.
 */
export interface InPlaceAlgorithm<State = unknown> {
  /** The state of a key never seen: read exactly as the pure step reads `undefined`. */
  newState(now: number, policy: LimitPolicy): State;
  /** Decides; when the request is admitted, updates `state` to the pure step's state (else leaves it). */
  step(state: State, now: number, cost: number, policy: LimitPolicy): Decision;
  /** How long to keep `state` after `now` (the pure algorithm's `ttlMs`). */
  ttlMs(state: State, now: number, policy: LimitPolicy): number;
}

/** Every algorithm's in-place step by name. */
export const inPlaceAlgorithms: Record<AlgorithmName, InPlaceAlgorithm> = {
  'fixed-window': {
    newState: newFixedWindowState,
    step: fixedWindowInPlace,
    ttlMs: fixedWindowTtl,
  } as InPlaceAlgorithm,
  'sliding-window': {
    newState: newSlidingWindowState,
    step: slidingWindowInPlace,
    ttlMs: slidingWindowTtl,
  } as InPlaceAlgorithm,
  'sliding-log': {
    newState: newSlidingLogState,
    step: slidingLogInPlace,
    ttlMs: slidingLogTtl,
  } as InPlaceAlgorithm,
  'token-bucket': {
    newState: newTokenBucketState,
    step: tokenBucketInPlace,
    ttlMs: tokenBucketTtl,
  } as InPlaceAlgorithm,
  'leaky-bucket': {
    newState: newLeakyBucketState,
    step: leakyBucketInPlace,
    ttlMs: leakyBucketTtl,
  } as InPlaceAlgorithm,
};

/**
 * An algorithm's adjustments of a key's state outside a check: `(state, now, points, policy) →
 * state`, `undefined` meaning a key never seen (an empty state).
 */
export interface Adjuster<State = unknown> {
  /** Gives back up to `points` consumed in the current window or bucket, never past empty. */
  refund(state: State | undefined, now: number, points: number, policy: LimitPolicy): State | undefined;
  /** Consumes `points` even when they do not fit, down to `remaining` 0 and never below. */
  penalize(state: State | undefined, now: number, points: number, policy: LimitPolicy): State | undefined;
}

/** Every algorithm's adjustments by name. */
export const adjusters: Record<AlgorithmName, Adjuster> = {
  'fixed-window': { refund: fixedWindowRefund, penalize: fixedWindowPenalize } as Adjuster,
  'sliding-window': { refund: slidingWindowRefund, penalize: slidingWindowPenalize } as Adjuster,
  'sliding-log': { refund: slidingLogRefund, penalize: slidingLogPenalize } as Adjuster,
  'token-bucket': { refund: tokenBucketRefund, penalize: tokenBucketPenalize } as Adjuster,
  'leaky-bucket': { refund: leakyBucketRefund, penalize: leakyBucketPenalize } as Adjuster,
};

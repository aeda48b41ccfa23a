import { maxClockStepBackMs } from './algorithms/clock-step.js';
import type { AutoBlockPolicy } from './auto-block.js';
import { violationSlotMs, violationSlots } from './auto-block.js';
import { capacityOf, type LimitPolicy } from './policy.js';
import type { StoreAdjustment } from './stores/store.js';

/**
 * How a store remembers the namespaces a rule has written under (see
 * `RateLimitStore.recordNamespace`): a rule's namespace carries the fingerprint of its limits, so a
 * restart with another algorithm or window writes under a new one, and `resetAll()` must still
 * find the keys written under the earlier one. The key layout cannot tell them apart by pattern
 * (a `prefix` may contain `:`), so each limiter records its namespaces, and each record is kept
 * as long as the keys written under it may live, no longer.
 */

/** Longest interval between two refreshes of a running limiter's records. */
const maxRefreshMs = 3_600_000;
/** Shortest interval between two refreshes of a running limiter's records. */
const minRefreshMs = 60_000;
/** Longest time a record is asked to last: beyond it Redis refuses the expiry (~1,100 years). */
const maxRecordMs = 2 ** 45;

/**
 * The longest a key of a rule with `limits` and `block` lives after the last check that wrote it
 * (the Lua `state_ttl` and `PEXPIRE`s, and the memory store's `ttlMs`): a window (two for the sliding
 * window), a bucket's time to refill from empty (plus a leaky bucket's queue), an auto-block's
 * longest block and `forgetAfterMs`, or its violation slots; plus a clock step back, which keeps
 * state written ahead of the clock that much longer.
 */
export function ruleKeyLifetimeMs(
  limits: readonly LimitPolicy[],
  block: AutoBlockPolicy | undefined,
): number {
  let longest = 0;
  for (const policy of limits)
    longest = Math.max(
      longest,
      (2 * policy.windowMs * Math.max(1, capacityOf(policy))) / policy.limit + (policy.queueMaxDelayMs ?? 0),
    );
  if (block !== undefined)
    longest = Math.max(
      longest,
      block.maxBlockMs + block.forgetAfterMs,
      (violationSlots + 2) * violationSlotMs(block),
    );
  return Math.ceil(longest) + maxClockStepBackMs;
}

/**
 * The longest a key lives after `adjustment` made it, when that is beyond
 * {@link ruleKeyLifetimeMs}: a manual block lasts its duration, then its offences are kept for
 * `forgetAfterMs`. Other adjustments stay within the rule's lifetime (a penalty empties a bucket,
 * never below), and give `undefined`.
 */
export function adjustedKeyLifetimeMs(
  limits: readonly LimitPolicy[],
  adjustment: StoreAdjustment,
  block: AutoBlockPolicy | undefined,
): number | undefined {
  if (adjustment.operation !== 'block') return undefined;
  return adjustment.durationMs + (block?.forgetAfterMs ?? 0) + ruleKeyLifetimeMs(limits, block);
}

/** How often a running limiter refreshes its records: half the keys' lifetime, within 1 min and 1 h. */
export function recordRefreshMs(lifetimeMs: number): number {
  return Math.min(maxRefreshMs, Math.max(minRefreshMs, Math.ceil(lifetimeMs / 2)));
}

/**
 * How long a record made now is kept: the keys' lifetime plus two refresh intervals, so that a
 * limiter's record never lapses between refreshes, and outlives by that much the keys it wrote
 * before it stopped (its last refresh came less than an interval before its last write).
 */
export function recordTtlMs(lifetimeMs: number): number {
  return Math.min(maxRecordMs, lifetimeMs + 2 * recordRefreshMs(lifetimeMs));
}

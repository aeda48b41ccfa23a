import { hash } from 'node:crypto';
import { maxTimerMs } from '@noa/core';
import { z } from 'zod';

/** The algorithms a limit can use. */
export const algorithmNames = [
  'fixed-window',
  'sliding-window',
  'sliding-log',
  'token-bucket',
  'leaky-bucket',
] as const;

/** One of {@link algorithmNames}. */
export type AlgorithmName = (typeof algorithmNames)[number];

/** The largest `limit` a sliding log accepts: it stores one entry per admitted request. */
export const maxSlidingLogLimit = 10_000;

/**
 * Most limits in one rule: the Redis store keeps a sliding-log set per limit beside the key's
 * hash, and `reset()` (which is given the key alone) deletes that many of them.
 */
export const maxLimitsPerRule = 16;

/** One limit: `limit` points per `windowMs`, counted with `algorithm`. */
export const limitSchema = z
  .object({
    /** Name shown in the `RateLimit` headers and metrics (a token: letters, digits, `_-.`). */
    name: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1-64 letters, digits, "_", "-" or "."')
      .optional(),
    /** How requests are counted; see the README's table of burst behaviour. */
    algorithm: z.enum(algorithmNames).default('fixed-window'),
    /** Points allowed per window (for buckets: the refill/leak rate is `limit / windowMs`). */
    limit: z.number().int().positive(),
    /** Window length in milliseconds. */
    windowMs: z.number().int().positive(),
    /** Token and leaky bucket: capacity (the largest burst). Defaults to `limit`. */
    burst: z.number().int().positive().optional(),
    /**
     * Leaky bucket only: queue instead of refusing. A request that does not fit is admitted
     * with `delayMs` (the caller waits) as long as that delay is at most this many ms.
     */
    queueMaxDelayMs: z
      .number()
      .int()
      .nonnegative()
      // A longer timer fires at once (Node clamps it to 1 ms): the request would not wait.
      .max(maxTimerMs, `must be at most ${maxTimerMs} (the longest timer Node can set)`)
      .optional(),
    /**
     * Fixed and sliding window only: where windows start, `k × windowMs + windowOffsetMs` instead
     * of on the Unix epoch's grid (0 ≤ offset < windowMs; a day's window reset at midnight UTC-5 is
     * 5 h, 18_000_000). `'key'`: an offset per key, a hash of the key, so that keys' windows end
     * at different instants (the same key gets the same offset in every process and store).
     */
    windowOffsetMs: z.union([z.number().int().nonnegative(), z.literal('key')]).optional(),
  })
  .strict()
  .superRefine((value, context) => {
    if (value.algorithm === 'sliding-log' && value.limit > maxSlidingLogLimit)
      context.addIssue({
        code: 'custom',
        path: ['limit'],
        message: `sliding-log keeps one entry per request: use at most ${maxSlidingLogLimit} (or sliding-window)`,
      });
    if (value.burst !== undefined && value.algorithm !== 'token-bucket' && value.algorithm !== 'leaky-bucket')
      context.addIssue({
        code: 'custom',
        path: ['burst'],
        message: 'only token-bucket and leaky-bucket take burst',
      });
    if (value.queueMaxDelayMs !== undefined && value.algorithm !== 'leaky-bucket')
      context.addIssue({ code: 'custom', path: ['queueMaxDelayMs'], message: 'only leaky-bucket can queue' });
    if (value.windowOffsetMs !== undefined) {
      if (value.algorithm !== 'fixed-window' && value.algorithm !== 'sliding-window')
        context.addIssue({
          code: 'custom',
          path: ['windowOffsetMs'],
          message: `only fixed-window and sliding-window have windows to offset (${value.algorithm} has none: it starts counting at each key's own requests)`,
        });
      else if (typeof value.windowOffsetMs === 'number' && value.windowOffsetMs >= value.windowMs)
        context.addIssue({
          code: 'custom',
          path: ['windowOffsetMs'],
          message: `must be less than windowMs (${value.windowMs}): an offset of o and of o % windowMs start the same windows`,
        });
    }
    if (value.algorithm === 'token-bucket' || value.algorithm === 'leaky-bucket') {
      // Buckets keep their level in whole points × windowMs (exact refill at any rate); past 2^53
      // that loses precision, and Redis's Lua cannot store it as an integer at all.
      const capacity = value.burst ?? value.limit;
      const queued = value.algorithm === 'leaky-bucket' ? (value.queueMaxDelayMs ?? 0) * value.limit : 0;
      if (capacity * value.windowMs + queued > Number.MAX_SAFE_INTEGER)
        context.addIssue({
          code: 'custom',
          path: [value.burst === undefined ? 'limit' : 'burst'],
          message: `${value.burst === undefined ? 'limit' : 'burst'} × windowMs${queued > 0 ? ' (plus queueMaxDelayMs × limit)' : ''} must be at most 2^53 - 1 (a bucket keeps points × windowMs): use a shorter window or a smaller limit`,
        });
    }
  });

/** A limit as written by users. */
export type LimitInput = z.input<typeof limitSchema>;

/** A validated limit with its name filled in. */
export interface LimitPolicy {
  name: string;
  algorithm: AlgorithmName;
  limit: number;
  windowMs: number;
  burst?: number | undefined;
  queueMaxDelayMs?: number | undefined;
  /** Where windows start (see `limitSchema`); absent for the epoch's grid (an offset of 0). */
  windowOffsetMs?: number | 'key' | undefined;
}

/** The name of the limit at `index` of its list when it has none: `default`, then `limit-1`, `limit-2`… */
export function defaultLimitName(index: number): string {
  return index === 0 ? 'default' : `limit-${index}`;
}

/** Fills in default names (see {@link defaultLimitName}) of a parsed list of limits. */
export function nameLimits(limits: readonly z.infer<typeof limitSchema>[]): LimitPolicy[] {
  return limits.map((limit, index) => {
    // An offset of 0 is the epoch's grid: left out (not deleted, which would slow the object's
    // reads), so that such a limit takes the paths without an offset, which do no work for one.
    const { windowOffsetMs, ...rest } = limit;
    const named = { ...rest, name: limit.name ?? defaultLimitName(index) };
    return windowOffsetMs === undefined || windowOffsetMs === 0 ? named : { ...named, windowOffsetMs };
  });
}

/** The capacity of a limit: `burst` for buckets, otherwise `limit`. */
export function capacityOf(policy: LimitPolicy): number {
  return policy.burst ?? policy.limit;
}

/**
 * A short digest of what shapes the stored state of a rule's limits: each limit's name, algorithm
 * and window, not its `limit`, `burst` or `windowOffsetMs` (raising a limit in a deploy keeps the
 * counters; another algorithm or window starts afresh, as such a change means; a new offset keeps
 * the count of the window the key was in, which then ends on the new grid). Part of the rule's store keys, so
 * that state written under one shape is never read under another.
 */
export function stateFingerprint(limits: readonly LimitPolicy[]): string {
  const shape = limits.map((policy) => `${policy.name}/${policy.algorithm}/${policy.windowMs}`).join('|');
  return hash('sha256', shape, 'base64url').slice(0, 8);
}

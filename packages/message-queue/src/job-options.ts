import { maxTimerMs } from '@noa/core';
import { z } from 'zod';
import { backoffSchema, maxRetryDelayMs } from './backoff.js';

/**
 * A string without lone UTF-16 surrogates (a cut emoji). Ids and group names travel inside JSON
 * arguments that Redis' Lua (cjson) must decode, and cjson rejects a lone surrogate's escape.
 */
export const wellFormedString = z
  .string()
  .refine((value) => !/\p{Cs}/u.test(value), { message: 'must be well-formed Unicode (no lone surrogate)' });

/** Highest `priority`: RabbitMQ's recommended x-max-priority range, kept for every provider. */
export const maxPriority = 10;

/**
 * Longest `delay` (ms, about 48.6 days): what every provider supports. RabbitMQ holds a delayed
 * job in a TTL queue per delay bucket that expires a minute after its TTL, and refuses an
 * `x-expires` past 2^32 - 1 ms; this is the largest bucket under that with the minute added.
 */
export const maxDelayMs = maxRetryDelayMs;

/** What happens to a flow's parent when one of its children fails for good. */
export const childFailurePolicySchema = z.enum(['fail', 'ignore', 'continue']);

/**
 * - `fail`: the parent is dead-lettered at once, with a `ChildFailedError` entry (code `NOA_MQ_CHILD_FAILED`,
 *   message `child <id> of job <parent id> failed: <the child's error message>`) in its error history; the
 *   worker whose exchange did it counts it in `_jobs_dead_lettered_total` and publishes `dead-lettered`.
 * - `ignore`: the failed child counts as done; the parent runs without its result.
 * - `continue`: the parent runs once all children settle and sees each failure in `childrenFailures`.
 */
export type ChildFailurePolicy = z.infer<typeof childFailurePolicySchema>;

/** Options of one job (`queue.add(name, data, options)`). */
export const jobOptionsSchema = z
  .object({
    /** Idempotency key: adding a job whose id is already held (waiting, active or retained) is a no-op. */
    jobId: wellFormedString.min(1).max(512).optional(),
    /** 0 (default) to 10; higher runs first. Same priority runs in insertion order. */
    priority: z.number().int().min(0).max(maxPriority).default(0),
    /** Milliseconds before the job becomes runnable. */
    delay: z.number().int().nonnegative().max(maxDelayMs).default(0),
    /** Total tries including the first; after the last the job goes to the dead-letter queue. */
    attempts: z.number().int().positive().default(3),
    /** Delay between tries. */
    backoff: backoffSchema.default({
      type: 'exponential',
      delayMs: 1_000,
      maxDelayMs: 3_600_000,
      jitter: 0.5,
    }),
    /** Per-try time limit in ms: the handler's signal aborts and the slot is freed. */
    timeout: z.number().int().positive().max(maxTimerMs).optional(),
    /** Delete the job as soon as it completes instead of keeping it under the queue's retention. */
    removeOnComplete: z.boolean().default(false),
    /** Tenant / fairness group: groups are dispatched by weight (see the worker's `groups`). */
    group: wellFormedString.min(1).max(256).optional(),
  })
  .strict();

/** Job options as users write them. */
export type JobOptions = z.input<typeof jobOptionsSchema>;
/** Job options after defaults. */
export type ParsedJobOptions = z.output<typeof jobOptionsSchema>;

import { type Clock, type Logger, maxTimerMs } from '@noa/core';
import type { Registry } from 'prom-client';
import { z } from 'zod';

/** Why a duration option is bounded: Node fires a longer timer after 1 ms. */
export const timerBoundMessage = `must be at most ${maxTimerMs} (the longest timer Node can set)`;

/** The fields of {@link poolOptionsSchema}, for schemas that extend it (e.g. the Redis pool's). */
export const poolOptionsObject = z
  .object({
    /** Name used in errors, logs and the `pool` metric label. */
    name: z.string().min(1).default('pool'),
    /** Resources kept open even when idle (the pool refills to this after failures). */
    min: z.number().int().nonnegative().default(0),
    /** Upper bound on open resources (lent + idle + being created). */
    max: z.number().int().positive().default(10),
    /** How long `acquire()` waits for a resource before it rejects with `AcquireTimeoutError`. */
    acquireTimeoutMs: z.number().int().positive().max(maxTimerMs, timerBoundMessage).default(10_000),
    /**
     * Most callers queued for a resource to be given back (those a connection being opened will
     * serve do not count); one more rejects at once with `QueueFullError`. Load shedding, as
     * mysql2's `queueLimit` (but 0 here means no queue at all). Unbounded when not set.
     */
    maxWaiting: z.number().int().nonnegative().optional(),
    /** An idle resource above `min` is closed after this long unused. */
    idleTimeoutMs: z.number().int().positive().max(maxTimerMs, timerBoundMessage).default(30_000),
    /** A resource is closed (and replaced) once it is this old, lent or not, at its next return. */
    maxLifetimeMs: z.number().int().positive().max(maxTimerMs, timerBoundMessage).optional(),
    /** How often idle eviction, idle validation, refill to `min` and leak checks run. */
    evictionIntervalMs: z.number().int().positive().max(maxTimerMs, timerBoundMessage).default(1_000),
    /** Run the factory's `validate` before lending an idle resource (one round trip per acquire). */
    validateOnBorrow: z.boolean().default(false),
    /** Run the factory's `validate` on idle resources at each eviction run. */
    validateIdle: z.boolean().default(false),
    /** A resource lent longer than this is reported as a leak, with the stack of its acquire. */
    leakDetectionThresholdMs: z.number().int().positive().max(maxTimerMs, timerBoundMessage).optional(),
    /** `close()` waits this long for lent resources to come back before it destroys them. */
    closeTimeoutMs: z.number().int().nonnegative().max(maxTimerMs, timerBoundMessage).default(5_000),
    /**
     * A factory `destroy` not settled after this long is abandoned (logged at `warn`, counted as
     * `destroy_timeout`, the resource aborted): `close()` goes on without it. Its slot is free from
     * the start: a resource being destroyed does not count toward `max`.
     */
    destroyTimeoutMs: z.number().int().positive().max(maxTimerMs, timerBoundMessage).default(5_000),
    /** First delay after a failed create; doubles per failure up to `maxBackoffMs`. */
    initialBackoffMs: z.number().int().nonnegative().max(maxTimerMs, timerBoundMessage).default(100),
    /** Longest delay between reconnect attempts while the backend is down. */
    maxBackoffMs: z.number().int().positive().max(maxTimerMs, timerBoundMessage).default(5_000),
    /**
     * Lets the process exit while every resource is idle, as `pg.Pool`'s option of that name: the
     * idle ones are unref'd (factory `unref`), a lent one ref'd again. Off by default: an idle
     * pool that is not closed keeps the process alive until its connections are evicted
     * (`idleTimeoutMs`; never for `min` of them).
     */
    allowExitOnIdle: z.boolean().default(false),
    /** Logger for leaks, create failures and destroy errors. */
    logger: z.custom<Logger>((value) => typeof value === 'object' && value !== null).optional(),
    /**
     * Clock for idle, lifetime and leak ages (tests pass a `ManualClock`). Default: monotonic
     * (`performance.now()`), so a wall-clock step (NTP, a VM resume) neither expires idle
     * connections nor reports lent ones as leaked.
     */
    clock: z.custom<Clock>((value) => typeof value === 'object' && value !== null).optional(),
    /** prom-client registry for the pool's metrics; none → metrics cost nothing. */
    registry: z.custom<Registry>((value) => typeof value === 'object' && value !== null).optional(),
  })
  .strict();

/** Options of one {@link Pool}: sizing, timeouts, validation, leak detection and observability. */
export const poolOptionsSchema = poolOptionsObject.refine((options) => options.max >= options.min, {
  path: ['max'],
  message: 'max must be >= min',
});

/** Options accepted by {@link Pool} (every field optional). */
export type PoolOptions = z.input<typeof poolOptionsSchema>;
/** Parsed pool options with defaults applied. */
export type ResolvedPoolOptions = z.output<typeof poolOptionsSchema>;

/** How a {@link Pool} opens, closes and checks its resources. */
export interface ResourceFactory<T> {
  /**
   * Opens one resource (a connection). A rejection counts as a backend failure. Each call must
   * return a distinct value: the pool tracks resources by identity.
   */
  create(): Promise<T>;
  /** Closes a resource; errors are logged, never thrown to the caller. */
  destroy(resource: T): Promise<void>;
  /** Resolves true when the resource still works (e.g. `SELECT 1`). */
  // The optional members take `undefined` (a factory built from config, exactOptionalPropertyTypes).
  validate?: ((resource: T) => Promise<boolean>) | undefined;
  /**
   * Drops a resource at once, without a goodbye to the server. `close()` calls it for the
   * resources still lent when `closeTimeoutMs` runs out, before `destroy`: a graceful close
   * would wait for the work running on them (or for a server that no longer answers).
   */
  abort?: ((resource: T) => void) | undefined;
  /** Lets an idle resource's socket no longer keep the process alive (`allowExitOnIdle`). */
  unref?: ((resource: T) => void) | undefined;
  /** Undoes `unref` when the resource is lent. */
  ref?: ((resource: T) => void) | undefined;
}

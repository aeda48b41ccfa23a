import { breakerOptionsSchema, type Clock, isLogger, type Logger, maxTimerMs } from '@noa/core';
import { z } from 'zod';
import type { EdgePurger } from './edge-purger.js';
import type { RedisClient } from './l2/redis-client.js';
import type { MetricsRegistry } from './metrics-registry.js';
import { DEFAULT_MAX_DECOMPRESSED_BYTES, defaultCompression } from './serialization/compression.js';
import { illFormedMessage, isWellFormed } from './well-formed-text.js';

const positiveMs = z.number().int().positive();
/**
 * A duration a Node timer waits for: `setTimeout` fires at once (with a warning) past
 * 2^31 - 1 ms (~24.8 days), so a larger timeout would end every call immediately.
 */
const timerMs = positiveMs.max(maxTimerMs);
/**
 * `softTimeoutMs`: a timer's wait, or 0 for none at all (bentocache's default `timeout: 0`): a
 * value in grace is served at once while the factory refreshes the key in the background.
 */
const softTimeoutMs = z.number().int().nonnegative().max(maxTimerMs);

/** Whether `value` is an entry's freshness: a positive integer of ms, or `Infinity` for no expiry. */
export const isEntryTtlMs = (value: unknown): value is number =>
  typeof value === 'number' &&
  (value === Number.POSITIVE_INFINITY || (Number.isSafeInteger(value) && value > 0));

/**
 * An entry's freshness in ms; `Infinity` keeps it without expiry in a cache whose default TTL
 * is finite (bentocache's `setForever`, Keyv's `ttl: 0`). 0 is refused, not read as "forever":
 * it reads as "already expired" just as well.
 */
const entryTtlMs = z.custom<number>(isEntryTtlMs, {
  message: 'must be a positive integer of ms, or Infinity for no expiry',
});

/**
 * Whether a namespace name keeps namespaces apart: full keys are `:<name>:…:<name>::<key>`, the
 * first `::` ending the path, so a name holding the `:` separator, or an empty one, could name
 * another namespace's keys.
 */
const separateName = (value: string) => !value.includes(':');
const separatorMessage = 'must not contain ":" (nest namespaces with cache.namespace())';

/** What a user fixing a refused prefix must know (the values stay under the old one). */
const prefixChangeNote =
  'a new prefix starts with an empty cache and its own bus channel: see "Upgrade notes" in the CHANGELOG';

/**
 * Whether `value` is an object (or function) with a method of each of `names`. Instances are
 * checked by shape, not `instanceof`: ioredis and prom-client are optional peers this module
 * does not import, and an app may hold another copy of either.
 */
function hasMethods(value: unknown, ...names: string[]): boolean {
  if ((typeof value !== 'object' && typeof value !== 'function') || value === null) return false;
  const methods = value as Record<string, unknown>;
  return names.every((name) => typeof methods[name] === 'function');
}

/**
 * Why `undefined` is no value: a `getOrSet` factory returning it caches nothing, so a stored
 * one would read as a miss (`get`) yet count as a hit (`has`, `getOrSet`, which then returned it
 * without running its factory).
 */
export const undefinedValueMessage = 'must not be undefined (use delete() to remove a key)';

/** A name given to `cache.namespace(name)`: not empty, without `:`. */
export const namespaceNameSchema = z
  .string()
  .min(1)
  .refine(separateName, separatorMessage)
  .refine(isWellFormed, illFormedMessage);

/** A key or tag as it reaches Redis: no lone surrogate (see well-formed-text.ts). */
const redisText = z.string().refine(isWellFormed, illFormedMessage);

/** Options of the in-process tier. */
export const l1OptionsSchema = z
  .object({
    /** Eviction policy: `lru` (lru-cache), `lfu`, `fifo`, `ttl` (soonest expiry first), `adaptive` (W-TinyLFU). */
    policy: z.enum(['lru', 'lfu', 'fifo', 'ttl', 'adaptive']).default('lru'),
    /** Most entries held. */
    maxEntries: z.number().int().positive().default(10_000),
    /** Most bytes held (encoded size with Redis, or the estimate when larger for a compressed value; an estimate without). */
    maxBytes: z
      .number()
      .int()
      .positive()
      .default(64 * 1024 * 1024),
    /**
     * How values leave L1: `reference` (fastest; callers must not mutate), `freeze` (deep-frozen
     * on write, so mutation throws in strict mode), `clone` (structuredClone per read and per
     * write, so no caller shares L1's object; safest, slowest).
     */
    mode: z.enum(['reference', 'freeze', 'clone']).default('reference'),
    /**
     * Caps how long an entry stays fresh in L1 regardless of its TTL, bounding staleness when
     * bus messages are lost (Redis outage). After it, reads go to L2.
     */
    maxTtlMs: positiveMs.optional(),
  })
  .strict();

/** Options of `new Cache()`. */
export const cacheOptionsSchema = z
  .object({
    /** Root namespace: every key is `:<namespace>::<key>` (no `:` in it; nest with `cache.namespace()`). */
    namespace: z
      .string()
      .refine(separateName, separatorMessage)
      .refine(isWellFormed, illFormedMessage)
      .default(''),
    /**
     * Redis key prefix: values live under `<prefix>v:`, the cache's own keys (tag sets, leases,
     * structures, hot keys) under `<prefix>__`, the bus channel is `<prefix>__bus`. It ends with
     * `:`, and none of its segments is `v` or starts with `__`: then no two prefixes share a key
     * (`a:` and `a:v:x:` did: the second's `k` was the first's `x:v:k`; `a:__tag:`'s values were
     * `a:`'s tag sets; `a` and `av:` too).
     */
    prefix: z
      .string()
      .min(1)
      // The messages name the fix: a deployment upgrading with a prefix earlier releases took
      // (`cache`) meets the rule at start-up, and must know that the fixed prefix starts empty.
      .refine((value) => value.endsWith(':'), {
        error: (issue) =>
          `must end with ":" (use ${JSON.stringify(`${String(issue.input)}:`)}; ${prefixChangeNote})`,
      })
      .refine((value) => value.split(':').every((segment) => segment !== 'v' && !segment.startsWith('__')), {
        error: `no ":"-separated segment may be "v" or start with "__" (the markers that follow a prefix; rename that segment, ${prefixChangeNote})`,
      })
      .refine(isWellFormed, illFormedMessage)
      .default('noa:cache:'),
    /**
     * Default freshness of an entry in ms (absent or `Infinity`: no expiry; `l1.maxTtlMs` still
     * bounds L1, and L1's size limits still evict).
     */
    ttlMs: entryTtlMs.optional(),
    /** Default grace period in ms after expiry during which a stale value may be served. */
    graceMs: z.number().int().nonnegative().default(0),
    /**
     * Default sliding expiry in ms (absent: none): an entry stays fresh for this long after
     * the last read that hit it, never past its `ttlMs` when it has one. An L1 hit slides that
     * instance's copy; an L2 hit slides L2's copy in the same call (`get-sliding.lua`), which
     * is how this cache reads L2 once this option is set.
     */
    slidingTtlMs: positiveMs.optional(),
    /** After a factory failure served stale, wait this long before calling the factory again. */
    graceBackoffMs: z.number().int().nonnegative().default(5_000),
    /**
     * With a stale value at hand, return it after this long and let the factory finish in
     * background; 0: return it at once (bentocache's `timeout: 0`). No stale value: no effect.
     */
    softTimeoutMs: softTimeoutMs.optional(),
    /** Without a stale value, give up after this long with `FactoryTimeoutError` (the factory goes on, and is cached if it finishes within `max(lock.leaseMs, hardTimeoutMs)`: past that it is given up), also when waiting for another instance's factory. */
    hardTimeoutMs: timerMs.optional(),
    /** XFetch β: 0 disables early refresh; 1 is the paper's optimum; higher refreshes earlier. */
    earlyRefreshBeta: z.number().nonnegative().default(1),
    /**
     * Refresh-ahead threshold in ms (cache-manager v7's `refreshThreshold`): a `getOrSet` hit on a
     * value with less freshness than this left refreshes it in the background (once across
     * instances, through the lease), whatever the factory's duration; callers get the current
     * value meanwhile. A failed refresh keeps it, and the next try waits `graceBackoffMs`.
     * Absent or 0: off (XFetch still applies).
     */
    refreshThresholdMs: z.number().int().nonnegative().optional(),
    /**
     * The in-process tier, or `false` for none (an L2-only cache: needs `redis`; every read goes
     * to Redis and is current there, nothing is kept in process; see "L2 only" in the README).
     */
    l1: z.union([z.literal(false), l1OptionsSchema]).default(l1OptionsSchema.parse({})),
    /**
     * An ioredis 5.4+ or 6 client (single node or Cluster) for L2, the bus and leases; absent: memory only.
     * Checked for the methods of {@link RedisClient} (mgetBuffer is ioredis's own).
     */
    redis: z
      .custom<RedisClient>(
        (value) => hasMethods(value, 'duplicate', 'evalsha', 'mgetBuffer', 'pipeline', 'publish', 'on'),
        {
          message: 'an ioredis Redis or Cluster instance (not a URL)',
        },
      )
      .optional(),
    /** L2 value encoding. */
    serializer: z.enum(['msgpack', 'json']).default('msgpack'),
    /**
     * msgpack only: the key lists of repeated object shapes (msgpackr record structures, up to
     * 32) are kept once in Redis (`<prefix>__structures`) instead of inline in every value, so
     * values are smaller and decode faster. Off: every value describes its shapes inline.
     */
    sharedStructures: z.boolean().default(true),
    /**
     * L2 compression of encoded values at least `thresholdBytes` long (default 64 KiB). Every
     * read of a compressed value pays its decompression (zstd in Node: ~1 µs per KB, which
     * roughly doubled the CPU of a 53 KB read), so compression is for large values, or for
     * deployments where Redis memory or network bytes cost more than client CPU (lower it).
     */
    compression: z
      .object({
        algorithm: z.enum(['none', 'gzip', 'brotli', 'zstd']).default(defaultCompression),
        thresholdBytes: z.number().int().nonnegative().default(65_536),
        /** A compressed L2 value that decompresses past this is a miss (bounds a compression bomb). */
        maxDecompressedBytes: z.number().int().positive().default(DEFAULT_MAX_DECOMPRESSED_BYTES),
      })
      .strict()
      .default({
        algorithm: defaultCompression,
        thresholdBytes: 65_536,
        maxDecompressedBytes: DEFAULT_MAX_DECOMPRESSED_BYTES,
      }),
    /**
     * Coalesce Redis reads and writes issued in the same event-loop turn into one MGET / one
     * pipeline (single node; a Cluster client relies on ioredis `enableAutoPipelining`).
     */
    batching: z.boolean().default(true),
    /** `await`: writes resolve after Redis acknowledged; `background`: after L1, Redis write in flight. */
    writeMode: z.enum(['await', 'background']).default('await'),
    /** Deadline of every Redis operation in ms. */
    operationTimeoutMs: timerMs.default(500),
    /** Circuit breaker over Redis operations. */
    breaker: breakerOptionsSchema.default(breakerOptionsSchema.parse({})),
    /** `degrade`: Redis failures are invisible (served from L1, counted); `throw`: `BackendUnavailableError`. */
    onBackendError: z.enum(['degrade', 'throw']).default('degrade'),
    /** L1 invalidation across instances over Redis pub/sub (needs `redis`). */
    bus: z.boolean().default(true),
    /** Cross-instance stampede protection: a Redis lease per key being computed. */
    lock: z
      .object({
        enabled: z.boolean().default(true),
        /** Lease lifetime: a crashed holder blocks others at most this long. */
        leaseMs: timerMs.default(10_000),
        /** How long waiters wait for the holder before the stale value or `LockTimeoutError`. */
        timeoutMs: timerMs.default(5_000),
        /** Waiters re-check Redis at least this often in case a wake-up message is lost. */
        pollMs: timerMs.default(100),
      })
      .strict()
      .default({ enabled: true, leaseMs: 10_000, timeoutMs: 5_000, pollMs: 100 }),
    /**
     * Hot set across restarts: on `close()` the cache saves its `hotKeys` most valuable L1 keys
     * (by its eviction policy) to Redis, and a new cache loads them from L2 into L1 on start
     * (`ready()` waits for it). 0 disables.
     */
    hotKeys: z.number().int().nonnegative().default(0),
    /**
     * `namespace` (default, as bentocache): a tag is its namespace's own, so a namespace's
     * `deleteByTag`/`expireByTag` reach only the entries written through that namespace view
     * (the root's only the root's), not another tenant's with the same tag name. `global`: one
     * tag across all namespaces (earlier releases). Scoping needs no key scan: the tag set is
     * named after the namespace (`<prefix>__tag:<namespace path>::<tag>`).
     */
    tagScope: z.enum(['namespace', 'global']).default('namespace'),
    /** Ties tags to a CDN purge: `deleteByTag` of a listed tag (or any tag when `tags` is absent) calls it. */
    edge: z
      .object({
        purger: z.custom<EdgePurger>((value) => hasMethods(value, 'purgeTags'), {
          message: 'an object with a purgeTags(tags) method',
        }),
        tags: z.array(z.string()).optional(),
        /**
         * How long `deleteByTag` waits for `purgeTags` before rejecting with `EdgePurgeError`
         * (cause: a `TimeoutError`); the purge itself is not cancelled.
         */
        timeoutMs: timerMs.default(10_000),
      })
      .strict()
      .optional(),
    /**
     * This cache's name in its metrics' `cache` label, so that caches sharing a registry (a
     * session and a catalogue cache) are told apart; caches of one name add up.
     */
    name: z.string().min(1).default('cache'),
    /** prom-client registry for metrics (absent: no metrics, no cost). */
    registry: z
      .custom<MetricsRegistry>((value) => hasMethods(value, 'registerMetric', 'getSingleMetric'), {
        message: 'a prom-client Registry',
      })
      .optional(),
    /**
     * While Redis fails, at most one failure warning per this many ms; the lines held back are
     * counted (core's `LogSampler`).
     */
    logIntervalMs: positiveMs.default(1_000),
    /** Logger (winston-compatible; pino through `fromPino`). */
    logger: z
      .custom<Logger>(isLogger, {
        message: 'a logger with debug, info, warn and error methods (pino: through fromPino)',
      })
      .optional(),
    /** Clock for freshness and expiry (timeouts use real timers). */
    clock: z
      .custom<Clock>((value) => hasMethods(value, 'now'), { message: 'an object with a now() method' })
      .optional(),
    /** Random source in (0, 1] for XFetch (tests inject a fixed one). */
    random: z
      .custom<() => number>((value) => typeof value === 'function', {
        message: 'a function returning a number in (0, 1]',
      })
      .optional(),
  })
  .strict()
  .superRefine((options, context) => {
    if (options.l1 !== false) return;
    const refuse = (message: string) => context.addIssue({ code: 'custom', path: ['l1'], message });
    if (options.redis === undefined) refuse(l2OnlyWithoutRedis);
    if (options.hotKeys > 0) refuse(l2OnlyWithHotKeys);
    if (options.writeMode === 'background') refuse(l2OnlyWithBackgroundWrites);
  });

/** Why `l1: false` needs `redis`. */
export const l2OnlyWithoutRedis = 'false (no L1) needs redis: a cache with neither tier holds nothing';
/** Why `l1: false` refuses `hotKeys`. */
export const l2OnlyWithHotKeys = 'false (no L1) leaves no tier for hotKeys to keep hot: set hotKeys to 0';
/**
 * Why `l1: false` refuses `writeMode: 'background'`: a background `set` resolves before Redis
 * has the value, and with no L1 to hold it meanwhile a `get` right after it on the same instance
 * missed (or read the value it replaced). Keeping the pending writes to answer such reads would
 * be an L1 by another name, one that can hold a value Redis never got.
 */
export const l2OnlyWithBackgroundWrites =
  "false (no L1) needs writeMode 'await': a background write resolves before Redis has the value, and with no L1 a get right after it would miss it";

/** Options of the in-process tier, as given (`l1`, when not `false`). */
export type L1Options = z.input<typeof l1OptionsSchema>;

/** Options of `new Cache()` (input type: every field optional). */
export type CacheOptions = z.input<typeof cacheOptionsSchema>;

/** Parsed options. */
export type ResolvedCacheOptions = z.output<typeof cacheOptionsSchema>;

/** Per-write options of `set`, `setMany` and the entries written by `getOrSet`. */
export const setOptionsSchema = z
  .object({
    /** Freshness in ms (default: the cache's `ttlMs`); `Infinity`: no expiry, whatever the cache's default. */
    ttlMs: entryTtlMs.optional(),
    /** Grace after expiry in ms (default: the cache's `graceMs`). */
    graceMs: z.number().int().nonnegative().optional(),
    /** Sliding expiry in ms (default: the cache's `slidingTtlMs`; 0: this entry does not slide). */
    slidingTtlMs: z.number().int().nonnegative().optional(),
    /** Tags for `deleteByTag` (the namespace's own unless `tagScope: 'global'`). */
    tags: z.array(redisText).readonly().optional(),
  })
  .strict();

/** Per-write options (validated when given: `ConfigError` names the bad field). */
export type SetOptions = z.input<typeof setOptionsSchema>;

/** One item of `setMany`: a key, its value and its write options. */
export const setManyItemSchema = setOptionsSchema
  .extend({
    key: redisText,
    value: z.unknown().refine((value) => value !== undefined, undefinedValueMessage),
  })
  .strict();

/** Per-call options of `getOrSet` and `wrap`: the write options plus the read-through ones. */
export const getOrSetOptionsSchema = setOptionsSchema
  .extend({
    /** See the cache option of the same name (0: the value in grace at once). */
    softTimeoutMs: softTimeoutMs.optional(),
    /** See the cache option of the same name. */
    hardTimeoutMs: timerMs.optional(),
    /** How long to wait for another instance's factory (default: `lock.timeoutMs`). */
    lockTimeoutMs: timerMs.optional(),
    /** XFetch β for this call. */
    earlyRefreshBeta: z.number().nonnegative().optional(),
    /** See the cache option of the same name (0: off for this call). */
    refreshThresholdMs: z.number().int().nonnegative().optional(),
    /**
     * Skip the cached value (L1 and L2, fresh or not) and run the factory, writing its result
     * to both tiers and telling other instances (bentocache's `forceFresh`). Still one run per
     * key: a call finding a forced load of the key in flight here, or a run of the key's
     * factory (here, or under the lease on another instance), waits for its result instead.
     * The value in grace still backs a failed or slow run.
     */
    forceFresh: z.boolean().optional(),
  })
  .strict();

/** Per-call options of `getOrSet` and `wrap` (validated when given). */
export type GetOrSetOptions = z.input<typeof getOrSetOptionsSchema>;

/**
 * What a factory receives: the key, the stale value (for a conditional refresh), and control
 * over the entry it is about to create, decided from the value it computed (adaptive caching).
 *
 * ```ts
 * await cache.getOrSet('feed', async (ctx) => {
 *   const items = await loadFeed();
 *   if (items.length === 0) ctx.skip(); // served, not cached
 *   else ctx.setOptions({ ttlMs: items[0].live ? 5_000 : 600_000, tags: ['feed'] });
 *   return items;
 * });
 * ```
 */
export interface FactoryContext<T> {
  /** The key being computed (without namespace). */
  readonly key: string;
  /**
   * The value in grace (expired, not yet dropped), if any: a factory can revalidate it (an
   * HTTP `If-None-Match`, a row version) and return it, with fresh options, when unchanged.
   */
  readonly staleValue: T | undefined;
  /**
   * Aborted when `close()` stops waiting for the run (after its `waitMs`, at once with 0), its
   * `reason` a `ClosedError` (`code` `NOA_CLOSED`): pass it to `fetch`, a driver's query, or
   * check it between steps, so that a run close() gives up on stops and frees its sockets. A
   * run that rejects once it is aborted is not a failure of the source: no failure mark for
   * other instances' waiters, no `factory-error` event, its lease freed at once. Also aborted
   * when the cache gives the run up (a `getOrSet` run or early refresh past
   * `max(lock.leaseMs, hardTimeoutMs)` that nobody awaits or another run of its key replaced),
   * its `reason` then a `FactoryTimeoutError` with `reason: 'abandoned'`. Not aborted for any
   * other reason (a change of the key during the run does not abort it by itself).
   */
  readonly signal: AbortSignal;
  /**
   * Sets the entry's `ttlMs`, `graceMs`, `slidingTtlMs` and `tags` (over the call's options; later calls
   * override earlier ones field by field). Validated at once: a bad field throws `ConfigError`
   * naming it, and if the factory lets it through, `getOrSet` rejects with that error (no stale
   * value is served over a programming mistake) and nothing is cached.
   */
  setOptions(options: SetOptions): void;
  /**
   * Declines caching: the value the factory returns still goes to its callers (and to those
   * waiting on the same key in this process), but neither tier stores it. Returning
   * `undefined` has the same effect.
   */
  skip(): void;
}

/**
 * Computes a missing value. Returning `undefined` caches nothing. A factory that ignores its
 * context (`() => load()`) is a valid one.
 */
export type Factory<T> = (context: FactoryContext<T>) => T | Promise<T>;

/** What a `getOrSetMany` factory returns: a map by key, or an array aligned with its keys. */
export type ManyFactoryResult<T> = ReadonlyMap<string, T> | readonly (T | undefined)[];

/**
 * Computes many missing values in one call (`getOrSetMany`): it receives only the keys no
 * tier had fresh and nobody else was computing (without namespace, distinct) and returns
 * their values as a `Map` (a key it leaves out, or maps to `undefined`, is not cached) or as an
 * array aligned with `keys`.
 */
export type ManyFactory<T> = (
  keys: readonly string[],
  /** `signal`: as {@link FactoryContext.signal}, for this batch's run. */
  context: Pick<FactoryContext<T>, 'signal'>,
) => ManyFactoryResult<T> | Promise<ManyFactoryResult<T>>;

import {
  ClosedError,
  ConfigError,
  HealthProbeGate,
  type HealthProbeOptions,
  type HealthProbeOutcome,
  type HealthReport,
  parseOptions,
  pingRedis,
  probeBackend,
  probeTimedOut,
} from '@noa/core';
import type { BusMessage } from './bus-message.js';
import type { CacheStats } from './cache-counters.js';
import { CacheEngine } from './cache-engine.js';
import {
  type CacheEventListener,
  type CacheEventMap,
  type CacheEventName,
  cacheEventNames,
} from './cache-events.js';
import {
  type CacheOptions,
  cacheOptionsSchema,
  type Factory,
  type FactoryContext,
  type GetOrSetOptions,
  type ManyFactory,
  type SetOptions,
} from './cache-options.js';
import {
  argumentError,
  checkFunction,
  checkGetOrSetOptions,
  checkNamespaceName,
  checkSetManyItems,
  checkSetOptions,
  checkTags,
  checkValue,
  illFormedError,
} from './call-options.js';
import { type CloseOptions, closeOptionsSchema } from './close-options.js';
import { scopeTags } from './entry.js';
import { HealthCheckTimeoutError } from './errors.js';
import { type CacheHealthState, cacheHealth, checkedCacheHealth } from './health.js';
import type { KeyTtl } from './key-ttl.js';
import { keyTtl } from './read-path.js';
import { type WarmOptions, type WarmReport, warmKeys, warmOptionsSchema } from './warm.js';
import { illFormedMessage, isWellFormed } from './well-formed-text.js';
import { writeMany } from './writes.js';

/** The options of a call made without any (shared, never mutated). */
const noOptions: GetOrSetOptions = Object.freeze({});

/** One entry for `setMany`. */
export interface CacheItem<T> extends SetOptions {
  key: string;
  value: T;
}

/** Each cache's `checkHealth()` gate, by engine: a cache and its namespaces share one PING. */
const healthGates = new WeakMap<CacheEngine, HealthProbeGate<HealthReport>>();

/**
 * A two-tier cache: decoded values in process (L1), encoded values in Redis (L2), kept
 * coherent across instances by a pub/sub bus, with read-through (`getOrSet`), memoisation
 * (`wrap`), tags, warming and stampede protection in and across processes. Without a Redis
 * client it is a memory cache with the same API.
 *
 * ```ts
 * const cache = new Cache({ redis, ttlMs: 60_000, graceMs: 600_000 });
 * const user = await cache.getOrSet(`user:${id}`, () => db.users.find(id), { tags: [`user:${id}`] });
 * ```
 */
export class Cache {
  readonly #engine: CacheEngine;
  /**
   * The namespace path, `:<name>:<name>:…:` ('' at the root): what this view's `clear()`
   * removes, its own keys and those of the namespaces nested in it.
   */
  readonly #path: string;
  /** `#path` and the `:` that ends it, before every key of this view ('' at the root). */
  readonly #keyPrefix: string;

  constructor(options: CacheOptions = {}) {
    const view = options as unknown as NamespaceView;
    if (view instanceof NamespaceView) {
      this.#engine = view.engine;
      this.#path = view.path;
    } else {
      const parsed = parseOptions('cache-manager', cacheOptionsSchema, options);
      this.#engine = new CacheEngine(parsed);
      this.#path = parsed.namespace ? `:${parsed.namespace}:` : '';
    }
    this.#keyPrefix = this.#path === '' ? '' : `${this.#path}:`;
  }

  /**
   * A view with keys of its own: shares tiers, bus and metrics, never a key with the root or
   * another namespace (README "Namespaces").
   */
  namespace(name: string): Cache {
    checkNamespaceName(name);
    const path = `${this.#path || ':'}${name}:`;
    return new Cache(new NamespaceView(this.#engine, path) as unknown as CacheOptions);
  }

  /**
   * The full key of `key`: `:<name>:…:<name>::<key>` in a namespace; at the root the key itself,
   * or `::<key>` for a key starting with `:`. Names are not empty and hold no `:`, so the first
   * `::` ends the path: no two (path, key) pairs share a full key, and a namespace's full keys
   * (and only they, with its children's) start with its path.
   */
  #key(key: string, method: string): string {
    // A key that is no string would be coerced: `{}` and `{ id: 1 }` both "[object Object]".
    if (typeof key !== 'string') throw argumentError(method, 'key', 'a string', key);
    if (!isWellFormed(key)) throw illFormedError(method, 'key');
    return this.#fullKey(key);
  }

  /** {@link #key} of a key already checked. */
  #fullKey(key: string): string {
    if (this.#keyPrefix !== '') return this.#keyPrefix + key;
    return key.charCodeAt(0) === 58 ? `::${key}` : key;
  }

  /**
   * `tags` as stored for this view (`tagScope: 'namespace'`): prefixed with its path as its
   * keys are (see `scopeTags`); as given with `tagScope: 'global'`.
   */
  #tags(tags: readonly string[]): readonly string[] {
    return this.#engine.options.tagScope === 'global' ? tags : scopeTags(this.#keyPrefix, tags);
  }

  /** {@link #key} of each of `keys` (`ConfigError` naming `keys` or `keys.<i>`). */
  #keys(keys: readonly string[], method: string): string[] {
    if (!Array.isArray(keys)) throw argumentError(method, 'keys', 'an array of strings', keys);
    const fullKeys = new Array<string>(keys.length);
    for (let index = 0; index < keys.length; index += 1) {
      const key = keys[index];
      if (typeof key !== 'string') throw argumentError(method, `keys.${index}`, 'a string', key);
      if (!isWellFormed(key)) throw illFormedError(method, `keys.${index}`);
      fullKeys[index] = this.#fullKey(key);
    }
    return fullKeys;
  }

  /** The fresh value of `key`, from L1 then L2; undefined when absent or expired. */
  get<T = unknown>(key: string): Promise<T | undefined> {
    // Not async: an L2 hit would pay a second promise and microtask hop for nothing.
    if (this.#engine.closed) return Promise.reject(new ClosedError('cache-manager'));
    try {
      return this.#engine.getValue<T>(this.#key(key, 'get'));
    } catch (error) {
      // A user clock, policy or listener that throws rejects, as it did when get was async.
      return Promise.reject(error);
    }
  }

  /**
   * L1 only, synchronous: the fresh value held in this process, or undefined (always, for an
   * L2-only cache: `l1: false`).
   */
  getLocal<T = unknown>(key: string): T | undefined {
    const entry = this.#engine.getLocal(this.#key(key, 'getLocal'));
    return entry === undefined ? undefined : this.#engine.out(entry.value as T);
  }

  /** Many values at once (L1 first, then one batched L2 read for the rest), in order. */
  async getMany<T = unknown>(keys: readonly string[]): Promise<(T | undefined)[]> {
    this.#open();
    const entries = await this.#engine.getMany(this.#keys(keys, 'getMany'));
    return entries.map((entry) => (entry === undefined ? undefined : this.#engine.out(entry.value as T)));
  }

  /**
   * How long `key` has left (cache-manager's `ttl`): its fresh lifetime in ms, whether it is in
   * grace, and when it is gone; `undefined` when absent (or past its grace). L1's copy first,
   * else L2's entry. A look, not a read: it slides no sliding entry (its `ttlMs` is what is
   * left of the current window) and counts no hit or miss. See {@link KeyTtl}.
   */
  async ttl(key: string): Promise<KeyTtl | undefined> {
    this.#open();
    return keyTtl(this.#engine, this.#key(key, 'ttl'));
  }

  /** True when a fresh value exists in L1 or L2. */
  async has(key: string): Promise<boolean> {
    this.#open();
    return (await this.#engine.get(this.#key(key, 'has'))) !== undefined;
  }

  /**
   * Writes through L1 and L2 and evicts the key from other instances' L1 (write-through).
   * Bad options throw `ConfigError` naming the field; so does an `undefined` value (`value`:
   * `undefined` is what a miss reads as, so it is not a value; `delete` removes a key).
   */
  async set<T>(key: string, value: T, options?: SetOptions): Promise<void> {
    this.#open();
    const fullKey = this.#key(key, 'set');
    checkValue(value);
    if (options !== undefined) checkSetOptions(options);
    await this.#engine.write(fullKey, value, options ?? noOptions);
  }

  /**
   * Writes many entries (each item's value and options are validated like `set`'s, all before
   * anything is written): L1 at once, L2 1,024 at a time, so a large batch does not queue past
   * the per-operation deadline.
   */
  async setMany<T>(items: readonly CacheItem<T>[]): Promise<void> {
    this.#open();
    checkSetManyItems(items);
    await writeMany(
      this.#engine,
      items.map(({ key, value, ...options }) => ({ fullKey: this.#fullKey(key), value, options })),
    );
  }

  /**
   * Deletes a key from both tiers and from every instance's L1. Resolves whether it was there
   * (in L1 or L2, fresh or in grace); with Redis unavailable, whether this L1 had it.
   */
  async delete(key: string): Promise<boolean> {
    this.#open();
    return this.#engine.delete([this.#key(key, 'delete')]);
  }

  /**
   * Get-and-delete: the fresh value of `key` (as `get`), and the key deleted from both tiers and
   * every instance's L1 (as `delete`, whether or not a fresh value was found). Not atomic across
   * instances: two pulls racing may both get the value, as with a `get` then a `delete`.
   */
  async pull<T = unknown>(key: string): Promise<T | undefined> {
    this.#open();
    const fullKey = this.#key(key, 'pull');
    const value = await this.#engine.getValue<T>(fullKey);
    await this.#engine.delete([fullKey]);
    return value;
  }

  /** Deletes many keys; resolves whether any was there (see {@link Cache.delete}). */
  async deleteMany(keys: readonly string[]): Promise<boolean> {
    this.#open();
    return this.#engine.delete(this.#keys(keys, 'deleteMany'));
  }

  /**
   * Deletes every entry carrying one of the tags, in both tiers and every instance, and
   * purges the CDN for tags tied to the edge. Tags are this namespace's own (unless `tagScope: 'global'`). Returns the
   * number of keys removed (an upper bound across tiers). When the edge purge fails, the cache
   * entries are already gone and it rejects with `EdgePurgeError` (the purger's error as cause).
   * When Redis fails its L2 part, the edge is not purged (L2 still holds the values, and a purged
   * CDN would fetch them again): with `onBackendError: 'degrade'` it resolves with the keys removed
   * (a warning is logged), with `'throw'` it rejects; either way call it again once Redis answers.
   */
  async deleteByTag(tags: string | readonly string[]): Promise<number> {
    this.#open();
    const named = checkTags(tags, 'deleteByTag');
    return this.#engine.deleteByTags(this.#tags(named), named);
  }

  /**
   * Marks a key stale without deleting it (soft invalidation), in both tiers and every
   * instance's L1: `get` and `has` see a miss, the next `getOrSet` runs the factory, and while
   * it runs past the soft timeout or if it fails, callers get the old value for the entry's
   * grace period (stale-while-revalidate after an invalidation, where `delete` would leave
   * nothing to fall back on). Without grace it is a delete. A factory run of the key in
   * progress is superseded (its result is returned, not cached). A `set` racing the expire is
   * never overwritten by it. An entry without TTL records no grace: it gets the cache's
   * `graceMs`.
   */
  async expire(key: string): Promise<void> {
    this.#open();
    await this.#engine.expire([this.#key(key, 'expire')]);
  }

  /** {@link Cache.expire} for many keys. */
  async expireMany(keys: readonly string[]): Promise<void> {
    this.#open();
    await this.#engine.expire(this.#keys(keys, 'expireMany'));
  }

  /**
   * {@link Cache.expire} for every entry carrying one of the tags, in both tiers and every
   * instance (through the tag sets, no key scans). Tags are this namespace's own (unless `tagScope: 'global'`). Returns
   * the number of keys marked stale. The edge is not purged (the entries still exist; use
   * `deleteByTag` for that).
   */
  async expireByTag(tags: string | readonly string[]): Promise<number> {
    this.#open();
    return this.#engine.expireByTags(this.#tags(checkTags(tags, 'expireByTag')));
  }

  /**
   * Removes every value of this namespace (the whole cache at the root) from both tiers. The
   * root clear also drops the tag sets and the shared structures list (no value is left that
   * needs it); live leases and the saved hot keys stay (README "Redis keys").
   */
  async clear(): Promise<void> {
    this.#open();
    await this.#engine.clear(this.#path);
  }

  /**
   * Read-through: returns the fresh value, or runs `factory` once (per key, across
   * instances) and caches its result. The factory gets a {@link FactoryContext}: the stale
   * value, and `setOptions` / `skip` to choose the entry's ttl, grace and tags (or no caching)
   * from the value it computed. With `graceMs`, a stale value is served when the factory
   * fails or exceeds `softTimeoutMs`; without one, `hardTimeoutMs` bounds the wait.
   * Per-call options, when given, are validated by a hand-written check that mirrors their zod
   * schema (a bad one rejects with `ConfigError` naming the field); a call without options
   * skips it.
   */
  getOrSet<T>(key: string, factory: Factory<T>, options?: GetOrSetOptions): Promise<T> {
    if (this.#engine.closed) return Promise.reject(new ClosedError('cache-manager'));
    let fullKey: string;
    try {
      fullKey = this.#key(key, 'getOrSet');
      if (typeof factory !== 'function') checkFunction(factory, 'getOrSet', 'factory');
      if (options !== undefined) checkGetOrSetOptions(options);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#engine.getOrSet(fullKey, key, factory, options ?? noOptions);
  }

  /**
   * Batch read-through: the values of `keys`, aligned with them. Fresh values come from L1,
   * then from one L2 read (MGET) for the rest; `factory` is called once with only the keys
   * still missing (distinct, without namespace) and returns a `Map` or an array aligned with
   * them; their values are written together (compare-and-set against what L2 held, one script
   * call per 256 keys or about 1 MiB on a single node, one per key on a Cluster: README
   * "Consistency"). A key another caller is already
   * computing is awaited, not recomputed: in this process through its flight (`getOrSet` and
   * `getOrSetMany` share them), across instances through its lease (that key then waits as
   * `getOrSet` would, and computes alone through `factory([key])` if the holder gives up).
   * `options` (ttl, grace, tags) apply to every entry written; a key the factory leaves out
   * (or maps to `undefined`) resolves to `undefined` and is not cached. When the factory fails,
   * keys with a value in grace get it, and the call rejects with `FactoryError` otherwise.
   */
  async getOrSetMany<T>(
    keys: readonly string[],
    factory: ManyFactory<T>,
    options?: SetOptions,
  ): Promise<(T | undefined)[]> {
    this.#open();
    this.#keys(keys, 'getOrSetMany');
    checkFunction(factory, 'getOrSetMany', 'factory');
    if (options !== undefined) checkSetOptions(options, 'cache-manager getOrSetMany');
    const distinct = [...new Set(keys)];
    const values = await this.#engine.getOrSetMany(
      this.#keys(distinct, 'getOrSetMany'),
      distinct,
      factory,
      options ?? noOptions,
    );
    if (distinct.length === keys.length) return values;
    const byKey = new Map(distinct.map((key, index) => [key, values[index]]));
    return keys.map((key) => byKey.get(key));
  }

  /**
   * Memoises an async function: `keyFn(...args)` names the entry, `fn(...args)` computes it.
   * The options are validated once, here (`ConfigError`). `fn` gets the factory context as
   * `this` (a `function`, not an arrow, can use it: `this.setOptions(...)`, `this.skip()`),
   * so its own arguments stay exactly the caller's. A `keyFn` that throws, or returns anything
   * but a string (`ConfigError` naming `keyFn`), rejects the call; the wrapper never throws.
   */
  wrap<Args extends unknown[], T>(
    fn: (this: FactoryContext<T>, ...args: Args) => T | Promise<T>,
    // NoInfer: the wrapper's parameters are fn's. A key function with untyped parameters was an
    // inference site too, and turned fn's optional and default parameters into required ones.
    // (Around the whole type: `(...args: NoInfer<Args>)` typed such a key function's parameter
    // for an optional one as required, which then did not fit.)
    keyFn: NoInfer<(...args: Args) => string>,
    options?: GetOrSetOptions,
  ): (...args: Args) => Promise<T> {
    checkFunction(fn, 'wrap', 'fn');
    checkFunction(keyFn, 'wrap', 'keyFn');
    if (options !== undefined) checkGetOrSetOptions(options, 'cache-manager wrap');
    const checked = options ?? noOptions;
    return (...args: Args) => {
      if (this.#engine.closed) return Promise.reject(new ClosedError('cache-manager'));
      let key: string;
      try {
        key = keyFn(...args);
      } catch (error) {
        return Promise.reject(error);
      }
      // A key such as "undefined" would be shared by every call whose key function slipped.
      if (typeof key !== 'string') {
        return Promise.reject(
          new ConfigError('cache-manager wrap', [
            { path: 'keyFn', message: `must return a string, returned ${typeof key}` },
          ]),
        );
      }
      if (!isWellFormed(key)) {
        return Promise.reject(
          new ConfigError('cache-manager wrap', [
            { path: 'keyFn', message: `must return a key that ${illFormedMessage}` },
          ]),
        );
      }
      return this.#engine.getOrSet(this.#fullKey(key), key, (context) => fn.apply(context, args), checked);
    };
  }

  /**
   * Loads `keys` that are not cached yet through `loader`, `concurrency` at a time, reporting
   * progress. Keys already fresh are skipped; failures are counted, not thrown; a throwing
   * `onProgress` is logged and ignored. When `signal` aborts or the cache closes, no new load
   * starts and it rejects at once with `WarmAbortedError` (the report so far attached); loads
   * in flight are abandoned, finish in the background and are cached. `loader` gets its run's
   * `signal` (see `FactoryContext.signal`: aborted when `close()` stops waiting, not by warm's).
   */
  async warm<T>(
    keys: Iterable<string>,
    loader: (key: string, context: Pick<FactoryContext<T>, 'signal'>) => T | Promise<T>,
    options: WarmOptions = {},
  ): Promise<WarmReport> {
    this.#open();
    const list = warmList(keys);
    checkFunction(loader, 'warm', 'loader');
    return warmKeys(this, list, loader, parseOptions('cache-manager warm', warmOptionsSchema, options), {
      logger: this.#engine.logger,
      closing: this.#engine.closing,
      hardTimeoutMs: this.#engine.options.hardTimeoutMs,
      runOf: (key) => this.#engine.running.get(this.#key(key, 'warm'))?.work,
    });
  }

  /** Sizes, Redis state and the cumulative counters (see {@link CacheStats}). */
  stats(): CacheStats {
    const l1 = this.#engine.l1;
    return this.#engine.metrics.counters.snapshot(
      { policy: l1.policy, entries: l1.size, bytes: l1.bytes },
      this.#engine.tier ? this.#engine.tier.state : 'none',
    );
  }

  /**
   * The cache's health, from state it keeps anyway (no Redis call): `up`; `degraded` while Redis
   * is bypassed (its breaker not closed, or not answering as a whole: its last call failed, on a
   * Cluster one that no master answered around) and L1 serves alone; `down` then with
   * `onBackendError: 'throw'` (calls reject), and after `close()`. On a Cluster with one master's
   * calls failing while the others answer: `degraded` (`l2PartFailing`), in both modes. `details`:
   * `l1Entries`, `l2` (the breaker state, `none` without Redis), `l2Answering`, `l2PartFailing`,
   * `onBackendError`; `cause`: the last Redis error. Up again at the first call Redis answers (a
   * failing master: a second after its last failed call).
   * An idle cache reports `up` whatever Redis does: for a readiness probe, use
   * {@link Cache.checkHealth}.
   */
  health(): HealthReport {
    return cacheHealth(this.#healthState());
  }

  /**
   * Asks Redis now (a PING of the node, of the Sentinel client's current master, or of every
   * master a Cluster client knows), then reports as {@link Cache.health} does, corrected by the
   * answer: no answer or an error makes Redis not answering (`degraded`, or `down` with
   * `onBackendError: 'throw'`, the error as `cause`); an answer with the breaker closed is `up`;
   * a breaker not closed stays `degraded`/`down`. `details.probe` says `answered`, `failed` or
   * `timeout`. Never rejects but for bad options (`ConfigError`); a memory-only cache answers
   * `up` and a closed one `down`, without I/O. The PING does not feed the breaker (see the
   * README, "Health").
   *
   * `options` (@noa/core's `healthProbeOptionsSchema`): with no answer within `timeoutMs`
   * (default 500 ms) the report's `cause` is a `HealthCheckTimeoutError`
   * (`NOA_CACHE_HEALTH_CHECK_TIMEOUT`) while the PING goes on (up to `operationTimeoutMs`);
   * concurrent calls, from this cache and its namespaces, share one PING, and an answer younger
   * than `maxAgeMs` (default 1 s) is returned again without one.
   */
  checkHealth(options?: HealthProbeOptions): Promise<HealthReport> {
    let gate = healthGates.get(this.#engine);
    if (gate === undefined) {
      gate = this.#healthGate();
      healthGates.set(this.#engine, gate);
    }
    return gate.check(options);
  }

  #healthState(): CacheHealthState {
    const tier = this.#engine.tier;
    return {
      closed: this.#engine.closed,
      l1: this.#engine.l1Enabled,
      l1Entries: this.#engine.l1.size,
      onBackendError: this.#engine.options.onBackendError,
      l2:
        tier === undefined
          ? undefined
          : {
              breaker: tier.state,
              answering: tier.healthy,
              partFailing: tier.partFailing,
              lastError: tier.lastError,
            },
      now: Date.now(),
    };
  }

  #healthGate(): HealthProbeGate<HealthReport> {
    const engine = this.#engine;
    return new HealthProbeGate<HealthReport>({
      probe: async () => {
        const client = engine.tier?.client;
        const probe: HealthProbeOutcome =
          client === undefined
            ? { answered: true }
            : await probeBackend(
                () => pingRedis(client),
                engine.options.operationTimeoutMs,
                'cache health PING',
              );
        return checkedCacheHealth(this.#healthState(), probe);
      },
      timedOut: (timeoutMs) =>
        checkedCacheHealth(this.#healthState(), probeTimedOut(new HealthCheckTimeoutError(timeoutMs))),
      // Nothing to ask: a closed cache is down, a memory-only one up.
      closed: () => (engine.closed || engine.tier === undefined ? this.health() : undefined),
    });
  }

  /**
   * Sets the counters of {@link Cache.stats} back to zero (cache-wide, like the counters);
   * the prom-client series, being cumulative by contract, are left alone.
   */
  resetStats(): void {
    this.#engine.metrics.counters.reset();
  }

  /**
   * Resolves once the invalidation bus is subscribed and then the saved hot keys are loaded
   * (after the bus, so that none misses an invalidation; immediately for a memory-only cache).
   * The cache works before that; a value written by another instance meanwhile may just be
   * missed by this one's L1 invalidation. While Redis
   * does not answer it waits for the bus at most `operationTimeoutMs`, and no longer once the
   * bus's connection attempt failed; the bus then subscribes when Redis answers and drops L1.
   * Never rejects.
   */
  async ready(): Promise<void> {
    await this.#engine.ready;
  }

  /**
   * Saves this process's hottest L1 keys for the next start (done by `close()` when `hotKeys` > 0);
   * nothing for an L2-only cache (`l1: false`), which has none.
   */
  async saveHotKeys(limit: number): Promise<void> {
    this.#open();
    await this.#engine.saveHotKeys(limit);
  }

  /**
   * Subscribes to a cache event and returns the unsubscribe function. Typed per event:
   * `cache.on('hit', ({ key, tier }) => …)`; see {@link CacheEventMap} for every event and its
   * payload. Listeners run synchronously inside the cache call (keep them cheap; one that
   * throws is logged and ignored). Events are cache-wide: a namespace view subscribes to its
   * whole cache, and keys are full keys (`:<namespace>::<key>`, a root key as given). With no
   * listener for an event, its emitting sites cost one property read.
   */
  on<E extends CacheEventName>(event: E, listener: CacheEventListener<E>): () => void {
    if (!cacheEventNames.has(event)) {
      throw new ConfigError('cache-manager on', [
        {
          path: 'event',
          message: `unknown event ${JSON.stringify(event)}; one of ${[...cacheEventNames].join(', ')}`,
        },
      ]);
    }
    return this.#engine.events.on(event, listener);
  }

  /**
   * Observes invalidation messages from other instances (after they are applied); returns an
   * unsubscribe function. Meant for measurements and tests.
   */
  onInvalidation(listener: (message: Readonly<BusMessage>) => void): () => void {
    // Wrapped so that the same function registered twice gets two subscriptions.
    const subscription = (message: BusMessage) => listener(message);
    this.#engine.busListeners.add(subscription);
    return () => {
      this.#engine.busListeners.delete(subscription);
    };
  }

  /**
   * Waits for background work (early refreshes, factory runs whose callers stopped waiting,
   * background writes) for at most `waitMs` (default 5 000), then aborts `ctx.signal` of every
   * factory run still in progress (reason: a `ClosedError`), and closes the bus connection.
   * `waitMs: 0` aborts at once. The Redis client passed in is the caller's and stays open.
   * Closing a namespace view closes the whole cache; a second call resolves at once.
   */
  async close(options?: CloseOptions): Promise<void> {
    const { waitMs } = parseOptions('cache-manager close', closeOptionsSchema, options ?? {});
    await this.#engine.close(waitMs);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #open(): void {
    if (this.#engine.closed) throw new ClosedError('cache-manager');
  }
}

/**
 * `warm`'s keys as a list, all checked before any load: `ConfigError` naming `keys` for a string
 * (an `Iterable<string>` to TypeScript too, whose characters were each warmed as a key) or a
 * value that is not iterable, `keys.<i>` for an element that is not a string (counted as a failed
 * load before, and never the caller's mistake to see).
 */
function warmList(keys: Iterable<string>): string[] {
  const iterable = keys as unknown as { [Symbol.iterator]?: unknown } | null | undefined;
  if (typeof keys === 'string' || typeof iterable?.[Symbol.iterator] !== 'function') {
    throw argumentError('warm', 'keys', 'an iterable of strings (not a string)', keys);
  }
  const list = [...keys];
  for (let index = 0; index < list.length; index += 1) {
    if (typeof list[index] !== 'string')
      throw argumentError('warm', `keys.${index}`, 'a string', list[index]);
    if (!isWellFormed(list[index] as string)) throw illFormedError('warm', `keys.${index}`);
  }
  return list;
}

/** Internal: passed to the constructor to build a namespace view over an existing engine. */
class NamespaceView {
  constructor(
    readonly engine: CacheEngine,
    readonly path: string,
  ) {}
}

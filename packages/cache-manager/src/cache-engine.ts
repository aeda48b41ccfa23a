import { randomUUID } from 'node:crypto';
import {
  type Clock,
  childLogger,
  type Logger,
  silentLogger,
  systemClock,
  tracingChannel,
  withDeadline,
} from '@noa/core';
import { type BusMessage, InvalidationBus } from './bus.js';
import { CacheEvents, type StaleReason } from './cache-events.js';
import type {
  Factory,
  GetOrSetOptions,
  ManyFactory,
  ResolvedCacheOptions,
  SetOptions,
} from './cache-options.js';
import { type CacheEntry, createEntry, expireEntry, isFresh, shouldRefreshEarly } from './entry.js';
import {
  EdgePurgeError,
  FactoryError,
  FactoryTimeoutError,
  LockTimeoutError,
  SerializationError,
} from './errors.js';
import { FactoryRunContext } from './factory-context.js';
import { FactoryRuns } from './factory-runs.js';
import { createL1Store } from './l1/create-l1-store.js';
import { estimateSize } from './l1/estimate-size.js';
import type { L1Store, RemovalReason } from './l1/l1-store.js';
import { onConnectionClose } from './l2/connection-close.js';
import { RedisGuard } from './l2/redis-guard.js';
import { RedisTier } from './l2/redis-tier.js';
import { alignMany, type Settler, settle } from './many-results.js';
import { CacheMetrics } from './metrics.js';
import { EntryCodec } from './serialization/entry-codec.js';
import { SharedStructures } from './serialization/shared-structures.js';
import { cloneForL1, copyOfFlight, deepFreeze } from './value-copies.js';

/** `noa:cache-manager:factory` — one message per factory run: `{ key, durationMs, ok }`. */
const factoryChannel = tracingChannel('cache-manager', 'factory');

/**
 * Everything a cache and its namespace views share: the tiers, the bus, in-flight loads. All
 * methods take full keys (namespace included). `Cache` is the public face.
 */
/** One L1 lookup in this many is timed into the latency histogram (when metrics are on). */
const l1TimingEvery = 64;

export class CacheEngine {
  readonly options: ResolvedCacheOptions;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: CacheMetrics;
  readonly l1: L1Store;
  readonly tier: RedisTier | undefined;
  readonly bus: InvalidationBus | undefined;
  readonly codec: EntryCodec;
  /** Shared msgpack record structures (with Redis; written with msgpack + `sharedStructures`). */
  readonly structures: SharedStructures | undefined;
  readonly instanceId = randomUUID();
  /** Event listeners (`Cache.on`); every emitting site first checks its event's list. */
  readonly events: CacheEvents;
  /** `events.lists`, one load closer to the read paths. */
  readonly #listeners: CacheEvents['lists'];
  readonly #random: () => number;
  readonly #tagIndex = new Map<string, Set<string>>();
  readonly #flights = new Map<string, Promise<unknown>>();
  readonly #refreshing = new Set<string>();
  readonly #waiters = new Map<string, Set<() => void>>();
  readonly #background = new Set<Promise<unknown>>();
  /** Factory runs in progress by full key (see {@link FactoryRun}). */
  readonly #runs = new FactoryRuns();
  #closed = false;
  /** L1 lookups since the last timed one (see `#l1Get`). */
  #l1Lookups = 0;
  #stopWatchingConnection: (() => void) | undefined;
  /** Resolves when start-up work (bus subscription, hot-key warm-up) is done. */
  readonly ready: Promise<void>;

  constructor(options: ResolvedCacheOptions) {
    this.options = options;
    this.clock = options.clock ?? systemClock;
    this.logger = childLogger(options.logger ?? silentLogger, { component: 'cache-manager' });
    this.metrics = new CacheMetrics(options.registry);
    this.events = new CacheEvents(this.logger);
    this.#listeners = this.events.lists;
    this.#random = options.random ?? (() => 1 - Math.random());
    this.l1 = createL1Store(
      options.l1.policy,
      options.l1.maxEntries,
      options.l1.maxBytes,
      (key, entry, reason) => this.#onL1Removal(key, entry, reason),
    );
    if (options.redis) {
      const guard = new RedisGuard({
        operationTimeoutMs: options.operationTimeoutMs,
        breaker: options.breaker,
        onBackendError: options.onBackendError,
        metrics: this.metrics,
        logger: this.logger,
      });
      this.tier = new RedisTier(options.redis, options.prefix, guard, options.batching);
      // Every Redis cache can read values written with shared structures; only msgpack caches
      // with `sharedStructures` write them (and load the list at start).
      const structures = new SharedStructures(this.tier, (error) =>
        this.logger.warn('shared msgpack structures could not be synchronised', { error: String(error) }),
      );
      this.structures = structures;
      this.#stopWatchingConnection = onConnectionClose(options.redis, () => structures.distrust());
      if (options.bus) {
        this.bus = new InvalidationBus({
          tier: this.tier,
          channel: `${options.prefix}__bus`,
          instanceId: this.instanceId,
          onMessage: (message) => this.#onBusMessage(message),
          onResync: () => this.l1.clear(),
          metrics: this.metrics,
          logger: this.logger,
        });
      }
    }
    this.codec = new EntryCodec(
      options.serializer,
      options.compression.algorithm,
      options.compression.thresholdBytes,
      this.structures,
      options.sharedStructures,
    );
    const writeShared = options.sharedStructures && options.serializer === 'msgpack';
    // The hot keys are read once the structures are loaded (they may need them).
    const structuresLoaded = writeShared ? this.structures?.load() : undefined;
    this.ready = Promise.all([
      this.bus?.ready,
      Promise.resolve(structuresLoaded).then(() => this.#warmHotKeys()),
    ]).then(
      () => undefined,
      (error: unknown) => this.logger.warn('cache start-up work failed', { error: String(error) }),
    );
  }

  /** Loads the saved hot keys from L2 into L1 (see the `hotKeys` option). */
  async #warmHotKeys(): Promise<void> {
    if (!this.tier || this.options.hotKeys === 0) return;
    const keys = await this.tier.loadHotKeys(this.options.hotKeys);
    for (let start = 0; start < keys.length; start += 100) {
      await this.getMany(keys.slice(start, start + 100));
    }
    if (keys.length > 0) this.logger.info('warmed L1 from the saved hot keys', { keys: keys.length });
  }

  /** Saves the L1's most valuable keys to Redis for the next start. */
  async saveHotKeys(limit: number): Promise<void> {
    if (!this.tier || limit === 0) return;
    await this.tier.saveHotKeys(this.l1.hottest(limit));
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** L1 only: the fresh value or undefined, synchronously. */
  getLocal(fullKey: string): CacheEntry | undefined {
    const now = this.clock.now();
    const entry = this.l1.get(fullKey, now);
    if (entry !== undefined && isFresh(entry, now)) return entry;
    return undefined;
  }

  /** Copies a value out of L1 according to the `l1.mode` option. */
  out<T>(value: T): T {
    return this.options.l1.mode === 'clone' ? structuredClone(value) : value;
  }

  // ---- reads ---------------------------------------------------------------------------

  /**
   * `l1.get`, with one lookup in {@link l1TimingEvery} timed into the latency histogram when
   * metrics are on (timing every lookup would cost more than the lookup itself).
   */
  #l1Get(fullKey: string, now: number): CacheEntry | undefined {
    if (!this.metrics.enabled) return this.l1.get(fullKey, now);
    this.#l1Lookups = (this.#l1Lookups + 1) % l1TimingEvery;
    if (this.#l1Lookups !== 0) return this.l1.get(fullKey, now);
    const started = performance.now();
    const entry = this.l1.get(fullKey, now);
    this.metrics.latency('l1', 'get', (performance.now() - started) / 1_000);
    return entry;
  }

  async get(fullKey: string): Promise<CacheEntry | undefined> {
    const now = this.clock.now();
    const local = this.#l1Get(fullKey, now);
    if (local !== undefined && isFresh(local, now)) {
      this.metrics.request('l1', 'hit');
      if (this.#listeners.hit) this.#emitHit(fullKey, 'l1');
      return local;
    }
    this.metrics.request('l1', local ? 'stale' : 'miss');
    if (this.tier) {
      const remote = await this.#readL2(fullKey);
      if (remote && isFresh(remote.entry, this.clock.now())) {
        this.metrics.request('l2', 'hit');
        this.#l1Set(fullKey, remote.entry, remote.bytes);
        if (this.#listeners.hit) this.#emitHit(fullKey, 'l2');
        return remote.entry;
      }
      this.metrics.request('l2', remote ? 'stale' : 'miss');
    }
    if (this.#listeners.miss) this.#emitMiss(fullKey);
    return undefined;
  }

  async getMany(fullKeys: readonly string[]): Promise<(CacheEntry | undefined)[]> {
    const now = this.clock.now();
    const results: (CacheEntry | undefined)[] = fullKeys.map((key) => {
      const entry = this.#l1Get(key, now);
      const fresh = entry !== undefined && isFresh(entry, now);
      // The same labels as `get`: an entry L1 still holds past its expiry is `stale`.
      this.metrics.request('l1', fresh ? 'hit' : entry ? 'stale' : 'miss');
      if (fresh && this.#listeners.hit) this.#emitHit(key, 'l1');
      return fresh ? entry : undefined;
    });
    if (!this.tier) {
      if (this.#listeners.miss) {
        for (let index = 0; index < results.length; index += 1) {
          if (results[index] === undefined) this.#emitMiss(fullKeys[index]!);
        }
      }
      return results;
    }
    const missing = fullKeys.filter((_, index) => results[index] === undefined);
    if (missing.length === 0) return results;
    const remote = await this.tier.getMany(missing);
    for (const bytes of remote) {
      const loading = bytes && this.codec.prepare(bytes);
      if (loading) await loading;
    }
    const later = this.clock.now();
    let cursor = 0;
    for (let index = 0; index < results.length; index += 1) {
      if (results[index] !== undefined) continue;
      const bytes = remote[cursor];
      const key = missing[cursor]!;
      cursor += 1;
      const entry = bytes ? this.#decode(key, bytes) : undefined;
      if (entry && isFresh(entry, later)) {
        this.metrics.request('l2', 'hit');
        this.#l1Set(key, entry, bytes!.length);
        results[index] = entry;
        if (this.#listeners.hit) this.#emitHit(key, 'l2');
      } else {
        this.metrics.request('l2', entry ? 'stale' : 'miss');
        if (this.#listeners.miss) this.#emitMiss(key);
      }
    }
    return results;
  }

  // ---- read-through --------------------------------------------------------------------

  getOrSet<T>(fullKey: string, userKey: string, factory: Factory<T>, options: GetOrSetOptions): Promise<T> {
    const now = this.clock.now();
    const entry = this.#l1Get(fullKey, now);
    if (entry !== undefined && now < entry.expiresAt) {
      this.metrics.request('l1', 'hit');
      if (this.#listeners.hit) this.#emitHit(fullKey, 'l1');
      const beta = options.earlyRefreshBeta ?? this.options.earlyRefreshBeta;
      if (entry.computeMs > 0 && shouldRefreshEarly(entry, now, beta, this.#random)) {
        this.#refreshEarly(fullKey, userKey, factory, options, entry);
      }
      return Promise.resolve(this.out(entry.value as T));
    }
    this.metrics.request('l1', entry ? 'stale' : 'miss');
    const inflight = this.#flights.get(fullKey) as Promise<T> | undefined;
    if (inflight) return this.options.l1.mode === 'clone' ? inflight.then(copyOfFlight) : inflight;
    const load = this.#load(fullKey, userKey, factory, options, entry as CacheEntry<T> | undefined).finally(
      () => this.#flights.delete(fullKey),
    );
    this.#flights.set(fullKey, load);
    // The flight resolves to the object L1 holds (or the factory's, which other callers share):
    // in clone mode the caller that started it gets a copy like everyone else.
    return this.options.l1.mode === 'clone' ? load.then(copyOfFlight) : load;
  }

  async #load<T>(
    fullKey: string,
    userKey: string,
    factory: Factory<T>,
    options: GetOrSetOptions,
    staleL1: CacheEntry<T> | undefined,
  ): Promise<T> {
    let stale = staleL1;
    if (this.tier) {
      const remote = await this.#readL2(fullKey);
      if (remote) {
        const entry = remote.entry as CacheEntry<T>;
        const now = this.clock.now();
        if (isFresh(entry, now)) {
          this.metrics.request('l2', 'hit');
          this.#l1Set(fullKey, entry, remote.bytes);
          if (this.#listeners.hit) this.#emitHit(fullKey, 'l2');
          return entry.value;
        }
        this.metrics.request('l2', 'stale');
        if (now < entry.staleUntil && (!stale || entry.createdAt > stale.createdAt)) stale = entry;
      } else {
        this.metrics.request('l2', 'miss');
      }
    }
    if (this.#listeners.miss) this.#emitMiss(fullKey);
    return this.#compute(fullKey, userKey, factory, options, stale);
  }

  /** Runs the factory once across instances: takes the key's lease or waits for its holder. */
  async #compute<T>(
    fullKey: string,
    userKey: string,
    factory: Factory<T>,
    options: GetOrSetOptions,
    stale: CacheEntry<T> | undefined,
  ): Promise<T> {
    const tier = this.tier;
    // After a failed Redis call (our L2 read just now, typically) a lease would only cost
    // another deadline: fall back to in-process single flight until Redis answers again.
    if (!tier || !this.options.lock.enabled || !tier.healthy)
      return this.#runFactory(fullKey, userKey, factory, options, stale);
    const token = randomUUID();
    let lease = await tier.acquireLease(fullKey, token, this.options.lock.leaseMs);
    if (lease === 'busy') {
      const started = Date.now();
      const lockTimeoutMs = options.lockTimeoutMs ?? this.options.lock.timeoutMs;
      const softTimeoutMs = options.softTimeoutMs ?? this.options.softTimeoutMs;
      const staleAt =
        stale && softTimeoutMs !== undefined ? started + softTimeoutMs : Number.POSITIVE_INFINITY;
      const giveUpAt = Math.min(started + lockTimeoutMs, staleAt);
      while (lease === 'busy') {
        const remaining = giveUpAt - Date.now();
        if (remaining <= 0) {
          if (stale) {
            this.metrics.lockWait('stale');
            this.#servedStale(fullKey, staleAt <= started + lockTimeoutMs ? 'soft_timeout' : 'lock_timeout');
            return stale.value;
          }
          this.metrics.lockWait('timeout');
          throw new LockTimeoutError(userKey, lockTimeoutMs);
        }
        await this.#sleepOrWake(fullKey, Math.min(this.options.lock.pollMs, remaining));
        const remote = await this.#readL2(fullKey);
        if (remote && isFresh(remote.entry, this.clock.now())) {
          this.metrics.lockWait('value');
          this.#l1Set(fullKey, remote.entry, remote.bytes);
          return remote.entry.value as T;
        }
        lease = await tier.acquireLease(fullKey, token, this.options.lock.leaseMs);
      }
      this.metrics.lockWait('acquired');
    }
    if (lease === 'acquired') {
      // Double-check: between our L2 miss and the lease, another instance may have computed
      // the value and released its lease.
      const remote = await this.#readL2(fullKey);
      if (remote && isFresh(remote.entry, this.clock.now())) {
        await tier.releaseLease(fullKey, token);
        this.#l1Set(fullKey, remote.entry, remote.bytes);
        return remote.entry.value as T;
      }
    }
    // 'unavailable': Redis is down, so only in-process single-flight protects the source.
    return this.#runFactory(
      fullKey,
      userKey,
      factory,
      options,
      stale,
      lease === 'acquired' ? token : undefined,
    );
  }

  /** Runs the factory with soft/hard timeouts and grace; writes the result through both tiers. */
  async #runFactory<T>(
    fullKey: string,
    userKey: string,
    factory: Factory<T>,
    options: GetOrSetOptions,
    stale: CacheEntry<T> | undefined,
    leaseToken?: string,
  ): Promise<T> {
    const started = performance.now();
    const tier = this.tier;
    const run = this.#runs.start(fullKey, options.tags ?? []);
    const context = new FactoryRunContext<T>(userKey, stale?.value, run);
    const work = (async () => {
      let value: T;
      try {
        value = await factory(context);
      } catch (error) {
        this.metrics.factoryRun('error');
        const failed = this.#listeners['factory-error'];
        if (failed) this.events.emit('factory-error', failed, { key: fullKey, error });
        if (factoryChannel.hasSubscribers) {
          factoryChannel.publish({ key: userKey, durationMs: performance.now() - started, ok: false, error });
        }
        if (leaseToken && tier) {
          // Free the lease first, then wake waiters so one of them retries at once.
          await tier.releaseLease(fullKey, leaseToken);
          this.bus?.publish('rel', [fullKey]).catch(() => {});
        }
        throw error;
      }
      this.metrics.factoryRun('ok');
      if (factoryChannel.hasSubscribers) {
        factoryChannel.publish({ key: userKey, durationMs: performance.now() - started, ok: true });
      }
      let stored: Promise<void> | undefined;
      if (run.superseded) {
        this.logger.debug('key changed while its factory ran; result not cached', { key: userKey });
      } else if (value !== undefined && !context.skipped) {
        const chosen = context.options;
        try {
          stored = this.#writeEntry(
            fullKey,
            value,
            chosen ? { ...options, ...chosen } : options,
            performance.now() - started,
          );
        } catch (error) {
          // The value is good, it just cannot be stored: serve it uncached rather than fail.
          if (!(error instanceof SerializationError)) throw error;
          this.metrics.error('l2', 'encode');
          this.logger.warn('factory value cannot be serialized; not cached', { key: userKey });
        }
      }
      // The lease is released only once the value is in L2: whoever takes the lease next
      // re-reads L2 and finds it, instead of computing it again. With nothing stored, waiters
      // are woken at once (no `set` message will come) so one of them computes.
      let finished = stored ?? Promise.resolve();
      if (leaseToken && tier) {
        finished = finished
          .finally(() => tier.releaseLease(fullKey, leaseToken))
          .then(() => {
            if (stored === undefined) this.bus?.publish('rel', [fullKey]).catch(() => {});
          });
      }
      if (this.options.writeMode === 'background') this.track(finished);
      else await finished;
      return value;
    })().finally(() => this.#runs.end(fullKey, run));
    const softTimeoutMs = options.softTimeoutMs ?? this.options.softTimeoutMs;
    const hardTimeoutMs = options.hardTimeoutMs ?? this.options.hardTimeoutMs;
    const limit = stale ? (softTimeoutMs ?? hardTimeoutMs) : hardTimeoutMs;
    let timedOut = false;
    try {
      return limit === undefined
        ? await work
        : await withDeadline(work, limit, 'cache factory', () => {
            timedOut = true;
          });
    } catch (error) {
      if (timedOut) {
        this.track(work);
        if (stale) {
          this.#servedStale(fullKey, softTimeoutMs !== undefined ? 'soft_timeout' : 'hard_timeout');
          return stale.value;
        }
        throw new FactoryTimeoutError(userKey, limit!);
      }
      if (context.rejected(error)) throw error;
      if (stale && this.clock.now() < stale.staleUntil) {
        this.#servedStale(fullKey, 'factory_error');
        this.logger.warn('factory failed; serving stale value', { key: userKey, error: String(error) });
        this.#backOff(fullKey, stale);
        return stale.value;
      }
      throw new FactoryError(userKey, { cause: error });
    }
  }

  /** After a failure served stale, keep the stale value "fresh" in L1 briefly so the source can recover. */
  #backOff(fullKey: string, stale: CacheEntry): void {
    const backoffMs = this.options.graceBackoffMs;
    if (backoffMs <= 0) return;
    const now = this.clock.now();
    const entry = { ...stale, expiresAt: Math.min(now + backoffMs, stale.staleUntil) };
    this.#l1Set(fullKey, entry, estimateSize(entry.value));
  }

  #refreshEarly<T>(
    fullKey: string,
    userKey: string,
    factory: Factory<T>,
    options: GetOrSetOptions,
    current: CacheEntry,
  ): void {
    if (this.#refreshing.has(fullKey) || this.#flights.has(fullKey) || this.#closed) return;
    this.#refreshing.add(fullKey);
    const refresh = (async () => {
      let token: string | undefined;
      if (this.tier && this.options.lock.enabled) {
        token = randomUUID();
        const lease = await this.tier.acquireLease(fullKey, token, this.options.lock.leaseMs);
        if (lease === 'busy') return; // another instance is refreshing; its bus message reaches us
        if (lease === 'unavailable') token = undefined;
        else {
          const remote = await this.#readL2(fullKey);
          if (remote && remote.entry.createdAt > current.createdAt) {
            // Refreshed by another instance between our decision and the lease.
            await this.tier.releaseLease(fullKey, token);
            this.#l1Set(fullKey, remote.entry, remote.bytes);
            return;
          }
        }
      }
      // No timeouts here: nobody waits on a background refresh.
      await this.#runFactory(
        fullKey,
        userKey,
        factory,
        { ...options, softTimeoutMs: undefined, hardTimeoutMs: undefined },
        current as CacheEntry<T>,
        token,
      );
    })().finally(() => this.#refreshing.delete(fullKey));
    this.track(refresh);
  }

  // ---- batch read-through --------------------------------------------------------------

  /**
   * Batch read-through over distinct keys (see `Cache.getOrSetMany`): L1, then one L2 read for
   * the rest, then one `factoryMany` call for the keys still missing that this instance holds
   * the lease of. Keys computed elsewhere are awaited, here through their flight, across
   * instances through their lease. Results are aligned with `fullKeys`.
   */
  async getOrSetMany<T>(
    fullKeys: readonly string[],
    userKeys: readonly string[],
    factoryMany: ManyFactory<T>,
    options: SetOptions,
  ): Promise<(T | undefined)[]> {
    const results = new Array<T | undefined>(fullKeys.length);
    const joined: Promise<void>[] = [];
    const stale = new Map<number, CacheEntry<T>>();
    const join = (index: number, flight: Promise<T>) =>
      joined.push(
        flight.then((value) => {
          results[index] = this.#handOut(value);
        }),
      );
    let rest: number[] = [];
    const now = this.clock.now();
    for (let index = 0; index < fullKeys.length; index += 1) {
      const fullKey = fullKeys[index]!;
      const entry = this.#l1Get(fullKey, now);
      if (entry !== undefined && now < entry.expiresAt) {
        this.metrics.request('l1', 'hit');
        if (this.#listeners.hit) this.#emitHit(fullKey, 'l1');
        results[index] = this.out(entry.value as T);
        continue;
      }
      this.metrics.request('l1', entry ? 'stale' : 'miss');
      if (entry) stale.set(index, entry as CacheEntry<T>);
      const flight = this.#flights.get(fullKey) as Promise<T> | undefined;
      if (flight) join(index, flight);
      else rest.push(index);
    }
    if (this.tier && rest.length > 0) rest = await this.#readManyFromL2(fullKeys, rest, results, stale);
    // Flights started by other callers while L2 answered are joined, not duplicated.
    const mine: number[] = [];
    for (const index of rest) {
      const flight = this.#flights.get(fullKeys[index]!) as Promise<T> | undefined;
      if (flight) join(index, flight);
      else mine.push(index);
    }
    if (mine.length > 0) {
      const settlers = new Map<number, Settler<T>>();
      for (const index of mine) {
        const fullKey = fullKeys[index]!;
        if (this.#listeners.miss) this.#emitMiss(fullKey);
        const settler = settle<T>();
        settlers.set(index, settler);
        const flight = settler.promise.finally(() => {
          if (this.#flights.get(fullKey) === flight) this.#flights.delete(fullKey);
        });
        // Handled here; joiners and this call still see the rejection.
        flight.catch(() => {});
        this.#flights.set(fullKey, flight);
        join(index, flight);
      }
      try {
        await this.#computeMany(fullKeys, userKeys, mine, settlers, factoryMany, options, stale);
      } catch (error) {
        // Settles what is left (settling twice is a no-op): a flight that never settles would
        // hang every later caller of its key.
        for (const settler of settlers.values()) settler.reject(error);
      }
    }
    await Promise.all(joined);
    return results;
  }

  /** One L2 read for `indexes`; fills the fresh ones into `results`, returns the others. */
  async #readManyFromL2<T>(
    fullKeys: readonly string[],
    indexes: readonly number[],
    results: (T | undefined)[],
    stale: Map<number, CacheEntry<T>>,
  ): Promise<number[]> {
    const remote = await this.tier!.getMany(indexes.map((index) => fullKeys[index]!));
    for (const bytes of remote) {
      const loading = bytes && this.codec.prepare(bytes);
      if (loading) await loading;
    }
    const now = this.clock.now();
    const missing: number[] = [];
    indexes.forEach((index, position) => {
      const fullKey = fullKeys[index]!;
      const bytes = remote[position];
      const entry = bytes ? (this.#decode(fullKey, bytes) as CacheEntry<T> | undefined) : undefined;
      if (entry && isFresh(entry, now)) {
        this.metrics.request('l2', 'hit');
        this.#l1Set(fullKey, entry, bytes!.length);
        if (this.#listeners.hit) this.#emitHit(fullKey, 'l2');
        results[index] = this.out(entry.value);
        return;
      }
      this.metrics.request('l2', entry ? 'stale' : 'miss');
      const known = stale.get(index);
      if (entry && now < entry.staleUntil && (!known || entry.createdAt > known.createdAt))
        stale.set(index, entry);
      missing.push(index);
    });
    return missing;
  }

  /**
   * Takes the leases of `indexes` (one SET NX each, sent together), runs `factoryMany` once for
   * the keys it got (or all of them when Redis is down or locks are off), and waits for the
   * others' holders key by key, as `getOrSet` does. Settles every settler.
   */
  async #computeMany<T>(
    fullKeys: readonly string[],
    userKeys: readonly string[],
    indexes: readonly number[],
    settlers: Map<number, Settler<T>>,
    factoryMany: ManyFactory<T>,
    options: SetOptions,
    stale: Map<number, CacheEntry<T>>,
  ): Promise<void> {
    const tier = this.tier;
    let batch = [...indexes];
    const waits: Promise<void>[] = [];
    let token: string | undefined;
    if (tier && this.options.lock.enabled && tier.healthy) {
      const leaseToken = randomUUID();
      token = leaseToken;
      const leases = await Promise.all(
        indexes.map((index) => tier.acquireLease(fullKeys[index]!, leaseToken, this.options.lock.leaseMs)),
      );
      batch = [];
      const held: number[] = [];
      indexes.forEach((index, position) => {
        const lease = leases[position];
        if (lease === 'busy') {
          // Another instance computes it: wait for its value (or take over), one key at a time.
          const single: Factory<T> = async () =>
            alignMany(await factoryMany([userKeys[index]!]), [userKeys[index]!])[0] as T;
          const settler = settlers.get(index)!;
          waits.push(
            this.#compute(fullKeys[index]!, userKeys[index]!, single, options, stale.get(index)).then(
              settler.resolve,
              settler.reject,
            ),
          );
          return;
        }
        batch.push(index);
        if (lease === 'acquired') held.push(index);
      });
      if (held.length > 0) {
        // As in `#compute`: between our L2 miss and the leases, another instance may have
        // computed some of these keys and released their leases.
        const found: (T | undefined)[] = [];
        const missing = new Set(await this.#readManyFromL2(fullKeys, held, found, new Map()));
        const computedElsewhere = held.filter((index) => !missing.has(index));
        for (const index of computedElsewhere) settlers.get(index)!.resolve(found[index] as T);
        await Promise.all(computedElsewhere.map((index) => tier.releaseLease(fullKeys[index]!, leaseToken)));
        const elsewhere = new Set(computedElsewhere);
        batch = batch.filter((index) => !elsewhere.has(index));
      }
    }
    if (batch.length > 0)
      await this.#runMany(fullKeys, userKeys, batch, settlers, factoryMany, options, stale, token);
    await Promise.all(waits);
  }

  /** Runs `factoryMany` once for `batch`, writes the values (one pipeline), releases the leases. */
  async #runMany<T>(
    fullKeys: readonly string[],
    userKeys: readonly string[],
    batch: readonly number[],
    settlers: Map<number, Settler<T>>,
    factoryMany: ManyFactory<T>,
    options: SetOptions,
    stale: Map<number, CacheEntry<T>>,
    leaseToken: string | undefined,
  ): Promise<void> {
    const tier = this.tier;
    const started = performance.now();
    const keys = batch.map((index) => userKeys[index]!);
    const runs = batch.map((index) => this.#runs.start(fullKeys[index]!, options.tags ?? []));
    const release = (indexes: readonly number[]) =>
      leaseToken && tier && indexes.length > 0
        ? Promise.all(indexes.map((index) => tier.releaseLease(fullKeys[index]!, leaseToken))).then(() => {
            this.bus
              ?.publish(
                'rel',
                indexes.map((index) => fullKeys[index]!),
              )
              .catch(() => {});
          })
        : Promise.resolve();
    try {
      let values: (T | undefined)[];
      try {
        values = alignMany(await factoryMany(keys), keys);
      } catch (error) {
        this.metrics.factoryRun('error');
        const failed = this.#listeners['factory-error'];
        if (failed)
          for (const index of batch)
            this.events.emit('factory-error', failed, { key: fullKeys[index]!, error });
        await release(batch);
        const now = this.clock.now();
        for (const index of batch) {
          const fallback = stale.get(index);
          if (fallback && now < fallback.staleUntil) {
            this.#servedStale(fullKeys[index]!, 'factory_error');
            this.#backOff(fullKeys[index]!, fallback);
            settlers.get(index)!.resolve(fallback.value);
          } else {
            settlers.get(index)!.reject(new FactoryError(userKeys[index]!, { cause: error }));
          }
        }
        return;
      }
      this.metrics.factoryRun('ok');
      const computeMs = performance.now() - started;
      const writes: Promise<void>[] = [];
      const unwritten: number[] = [];
      batch.forEach((index, position) => {
        const value = values[position];
        if (value === undefined || runs[position]!.superseded) {
          unwritten.push(index);
          return;
        }
        try {
          writes.push(this.#writeEntry(fullKeys[index]!, value, options, computeMs));
        } catch (error) {
          if (!(error instanceof SerializationError)) throw error;
          unwritten.push(index);
          this.metrics.error('l2', 'encode');
          this.logger.warn('factory value cannot be serialized; not cached', { key: userKeys[index]! });
        }
      });
      // Written keys' leases are released once their values are in L2 (see `#runFactory`).
      const skipped = new Set(unwritten);
      const written = batch.filter((index) => !skipped.has(index));
      const finished = Promise.all([
        release(unwritten),
        Promise.all(writes).finally(() =>
          leaseToken && tier
            ? Promise.all(written.map((index) => tier.releaseLease(fullKeys[index]!, leaseToken)))
            : undefined,
        ),
      ]);
      if (this.options.writeMode === 'background') this.track(finished);
      else await finished;
      batch.forEach((index, position) => {
        settlers.get(index)!.resolve(values[position] as T);
      });
    } catch (error) {
      for (const index of batch) settlers.get(index)!.reject(error);
    } finally {
      batch.forEach((index, position) => {
        this.#runs.end(fullKeys[index]!, runs[position]!);
      });
    }
  }

  /** A flight's value for one more caller (a copy in clone mode, as `getOrSet` hands out). */
  #handOut<T>(value: T): T {
    return this.options.l1.mode === 'clone' ? copyOfFlight(value) : value;
  }

  // ---- writes --------------------------------------------------------------------------

  /** Writes through L1, then L2 (awaited or in background), then tells other instances. */
  async write(fullKey: string, value: unknown, options: SetOptions, computeMs = 0): Promise<void> {
    this.#runs.supersedeKey(fullKey);
    const remote = this.#writeEntry(fullKey, value, options, computeMs);
    if (this.options.writeMode === 'background') this.track(remote);
    else await remote;
  }

  /**
   * Writes L1 synchronously (throws `SerializationError` synchronously when the value cannot
   * be encoded) and returns the L2 write in flight.
   */
  #writeEntry(fullKey: string, value: unknown, options: SetOptions, computeMs: number): Promise<void> {
    const now = this.clock.now();
    const entry = createEntry(
      this.options.l1.mode === 'clone' ? cloneForL1(value) : value,
      now,
      options.ttlMs ?? this.options.ttlMs,
      options.graceMs ?? this.options.graceMs,
      computeMs,
      options.tags ?? [],
    );
    const written = this.#listeners.set;
    if (written) this.events.emit('set', written, { key: fullKey });
    const tier = this.tier;
    if (!tier) {
      this.#l1Set(fullKey, entry, estimateSize(value));
      return Promise.resolve();
    }
    const encoded = this.codec.encode(entry);
    this.#l1Set(fullKey, entry, encoded.length);
    const physicalTtl = Number.isFinite(entry.staleUntil) ? entry.staleUntil - now : undefined;
    const remote = async () => {
      const written = await tier.set(fullKey, encoded, physicalTtl, entry.tags);
      if (written) this.metrics.written(encoded.length);
      // Published once the value is in L2 (waiters woken by it read L2), but not awaited: a
      // write costs one round trip, and other instances' L1s are evicted a moment later.
      const published = this.bus?.publish('set', [fullKey]);
      if (published) this.track(published);
    };
    return remote();
  }

  async delete(fullKeys: string[]): Promise<void> {
    const deleted = this.#listeners.delete;
    for (const key of fullKeys) {
      this.l1.delete(key);
      this.#runs.supersedeKey(key);
      if (deleted) this.events.emit('delete', deleted, { key });
    }
    if (!this.tier) return;
    await this.tier.delete(fullKeys);
    await this.bus?.publish('del', fullKeys);
  }

  async deleteByTags(tags: readonly string[]): Promise<number> {
    this.#runs.supersedeTags(tags);
    const removed = new Set<string>();
    for (const tag of tags) {
      for (const key of [...(this.#tagIndex.get(tag) ?? [])]) {
        if (this.l1.delete(key)) removed.add(key);
      }
      this.#tagIndex.delete(tag);
    }
    if (this.tier) {
      const lists = await Promise.all(tags.map((tag) => this.tier!.deleteTag(tag)));
      for (const list of lists) for (const key of list) removed.add(key);
      await this.bus?.publish('tag', [...tags]);
    }
    const deleted = this.#listeners.delete;
    if (deleted) for (const key of removed) this.events.emit('delete', deleted, { key });
    const edge = this.options.edge;
    if (edge) {
      const tied = edge.tags ? tags.filter((tag) => edge.tags!.includes(tag)) : [...tags];
      if (tied.length > 0) {
        try {
          await edge.purger.purgeTags(tied);
        } catch (error) {
          this.logger.warn('edge purge failed; the cache entries are deleted', {
            tags: tied,
            error: String(error),
          });
          throw new EdgePurgeError(tied, { cause: error });
        }
      }
    }
    return removed.size;
  }

  /**
   * Marks keys stale without deleting them (soft invalidation): each instance's L1 copy and
   * the L2 value end their freshness now and keep their grace, so the next `getOrSet`
   * recomputes while callers in grace can still be served the old value. Factory runs of the
   * keys are superseded, as by a delete.
   */
  async expire(fullKeys: readonly string[]): Promise<void> {
    const now = this.clock.now();
    const expired = this.#listeners.expire;
    for (const key of fullKeys) {
      this.#expireL1(key, now);
      this.#runs.supersedeKey(key);
      if (expired) this.events.emit('expire', expired, { key });
    }
    if (!this.tier) return;
    const outcomes = await Promise.all(fullKeys.map((key) => this.#expireL2(key)));
    // A key another write changed meanwhile is left out: that write's own `set` message
    // refreshes other instances, and ours arriving after it would mark the new value stale.
    const published = fullKeys.filter((_, index) => outcomes[index] !== 'overwritten');
    if (published.length > 0) await this.bus?.publish('exp', published);
  }

  /**
   * `expire` for every key carrying one of the tags (found through the L1 tag index and the
   * L2 tag sets, no scans). Returns the number of keys marked stale in either tier. Unlike
   * `deleteByTags` it does not purge the edge: the entries still exist.
   */
  async expireByTags(tags: readonly string[]): Promise<number> {
    const now = this.clock.now();
    this.#runs.supersedeTags(tags);
    const marked = new Set<string>();
    for (const tag of tags) {
      for (const key of [...(this.#tagIndex.get(tag) ?? [])]) {
        if (this.#expireL1(key, now, tags)) marked.add(key);
      }
    }
    if (this.tier) {
      const tier = this.tier;
      const members = new Set((await Promise.all(tags.map((tag) => tier.tagMembers(tag)))).flat());
      const keys = [...members];
      const outcomes = await Promise.all(keys.map((key) => this.#expireL2(key, tags)));
      keys.forEach((key, index) => {
        if (outcomes[index] === 'expired') marked.add(key);
      });
      await this.bus?.publish('exptag', [...tags]);
    }
    const expired = this.#listeners.expire;
    if (expired) for (const key of marked) this.events.emit('expire', expired, { key });
    return marked.size;
  }

  async clear(fullPrefix: string): Promise<void> {
    this.#clearL1(fullPrefix);
    this.#runs.supersedePrefix(fullPrefix);
    const cleared = this.#listeners.clear;
    if (cleared) this.events.emit('clear', cleared, { prefix: fullPrefix });
    if (!this.tier) return;
    await this.tier.clearPrefix(fullPrefix);
    await this.bus?.publish('clear', [fullPrefix]);
  }

  // ---- lifecycle -----------------------------------------------------------------------

  /** Keeps a background promise until it settles (close() waits for them); never rejects. */
  track(promise: Promise<unknown>): void {
    const tracked = promise.then(
      () => undefined,
      (error: unknown) => this.logger.warn('background cache work failed', { error: String(error) }),
    );
    this.#background.add(tracked);
    void tracked.finally(() => this.#background.delete(tracked));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Tracked promises never reject: a rejection here can only be the 5 s deadline.
    await withDeadline(Promise.all([...this.#background]), 5_000, 'cache close').catch(() => {});
    await this.saveHotKeys(this.options.hotKeys);
    await this.structures?.settled();
    this.#stopWatchingConnection?.();
    for (const wake of [...this.#waiters.values()].flatMap((set) => [...set])) wake();
    await this.bus?.close();
  }

  // ---- internals -----------------------------------------------------------------------

  // Out of line so the read paths stay small; callers check the list first.
  #emitHit(fullKey: string, tier: 'l1' | 'l2'): void {
    const listeners = this.#listeners.hit;
    if (listeners) this.events.emit('hit', listeners, { key: fullKey, tier });
  }

  #emitMiss(fullKey: string): void {
    const listeners = this.#listeners.miss;
    if (listeners) this.events.emit('miss', listeners, { key: fullKey });
  }

  #servedStale(fullKey: string, reason: StaleReason): void {
    this.metrics.staleServed(reason);
    const listeners = this.#listeners.stale;
    if (listeners) this.events.emit('stale', listeners, { key: fullKey, reason });
  }

  #l1Set(fullKey: string, entry: CacheEntry, bytes: number): void {
    const maxTtlMs = this.options.l1.maxTtlMs;
    let local = entry;
    if (maxTtlMs !== undefined) {
      const cap = this.clock.now() + maxTtlMs;
      if (entry.expiresAt > cap) local = { ...entry, expiresAt: cap };
    }
    if (this.options.l1.mode === 'freeze') deepFreeze(local.value);
    this.l1.set(fullKey, local, bytes);
    for (const tag of local.tags) {
      let keys = this.#tagIndex.get(tag);
      if (!keys) {
        keys = new Set();
        this.#tagIndex.set(tag, keys);
      }
      keys.add(fullKey);
    }
    if (this.metrics.enabled) this.metrics.l1Size(this.l1.size, this.l1.bytes);
  }

  #onL1Removal(fullKey: string, entry: CacheEntry, reason: RemovalReason): void {
    for (const tag of entry.tags) {
      const keys = this.#tagIndex.get(tag);
      if (!keys) continue;
      keys.delete(fullKey);
      if (keys.size === 0) this.#tagIndex.delete(tag);
    }
    if (reason !== 'deleted') this.metrics.eviction('l1', reason);
    // The stores report a removal once it is done, so the sizes read here are current.
    if (this.metrics.enabled) this.metrics.l1Size(this.l1.size, this.l1.bytes);
  }

  async #readL2(fullKey: string): Promise<{ entry: CacheEntry; bytes: number } | undefined> {
    const bytes = await this.tier!.get(fullKey);
    if (!bytes) return undefined;
    const loading = this.codec.prepare(bytes);
    if (loading) await loading;
    const entry = this.#decode(fullKey, bytes);
    return entry ? { entry, bytes: bytes.length } : undefined;
  }

  #decode(fullKey: string, bytes: Buffer): CacheEntry | undefined {
    try {
      return this.codec.decode(bytes);
    } catch (error) {
      this.metrics.error('l2', 'decode');
      this.logger.warn('could not decode an L2 value; treating it as a miss', {
        key: fullKey,
        error: String((error as Error).cause ?? error),
      });
      return undefined;
    }
  }

  /**
   * Marks the L1 copy of a key stale (see {@link expireEntry}); drops it when it has no grace.
   * With `tags`, only an entry carrying one of them (the tag index may name a key since
   * rewritten without the tag). True when an entry was marked or dropped.
   */
  #expireL1(fullKey: string, now: number, tags?: readonly string[]): boolean {
    const entry = this.l1.get(fullKey, now);
    if (entry === undefined || (tags && !entry.tags.some((tag) => tags.includes(tag)))) return false;
    const expired = expireEntry(entry, now, this.options.graceMs);
    if (expired === undefined) return false;
    if (expired.staleUntil <= now) this.l1.delete(fullKey);
    // The byte size L1 was given is not kept per entry; the estimate is what `#backOff` uses too.
    else this.#l1Set(fullKey, expired, estimateSize(expired.value));
    return true;
  }

  /**
   * Marks the L2 value of a key stale for every instance. The value is msgpack with shared
   * structures (and maybe compressed), which Lua cannot edit, so it is read, decoded,
   * re-encoded with the new timing and written back by compare-and-set: a script replaces it
   * only if Redis still holds the bytes read. A write that lands in between therefore wins
   * (it is newer than the expire) instead of being overwritten by the expired old value.
   * A per-key "expired at" marker would avoid the round trip but cost every read a second
   * key (or a second slot on a Cluster); expire is rare, reads are the hot path.
   * An entry without grace, or one this instance cannot decode, is deleted (by the same
   * compare-and-set): a miss is what both amount to. With `tags`, only a value carrying one.
   */
  async #expireL2(
    fullKey: string,
    tags?: readonly string[],
  ): Promise<'expired' | 'unchanged' | 'overwritten' | 'unavailable'> {
    const tier = this.tier!;
    const bytes = await tier.get(fullKey);
    if (!bytes) return 'unchanged';
    const loading = this.codec.prepare(bytes);
    if (loading) await loading;
    const entry = this.#decode(fullKey, bytes);
    if (entry && tags && !entry.tags.some((tag) => tags.includes(tag))) return 'unchanged';
    const now = this.clock.now();
    let next: Buffer | undefined;
    let physicalTtl: number | undefined;
    if (entry) {
      const expired = expireEntry(entry, now, this.options.graceMs);
      if (expired === undefined) return 'unchanged';
      if (expired.staleUntil > now) {
        try {
          next = this.codec.encode(expired);
          physicalTtl = Number.isFinite(expired.staleUntil) ? expired.staleUntil - now : undefined;
        } catch (error) {
          if (!(error instanceof SerializationError)) throw error;
          this.metrics.error('l2', 'encode');
        }
      }
    }
    const replaced = await tier.replaceIfUnchanged(fullKey, bytes, next, physicalTtl);
    if (replaced === undefined) return 'unavailable';
    return replaced ? 'expired' : 'overwritten';
  }

  #clearL1(fullPrefix: string): void {
    if (fullPrefix === '') {
      this.l1.clear();
      return;
    }
    for (const key of [...this.l1.keys()]) if (key.startsWith(fullPrefix)) this.l1.delete(key);
  }

  #onBusMessage(message: BusMessage): void {
    switch (message.t) {
      case 'set':
      case 'del':
        for (const key of message.k) {
          this.l1.delete(key);
          this.#runs.supersedeKey(key);
          this.#wake(key);
        }
        break;
      case 'rel':
        for (const key of message.k) this.#wake(key);
        break;
      case 'tag':
        this.#runs.supersedeTags(message.k);
        for (const tag of message.k) {
          for (const key of [...(this.#tagIndex.get(tag) ?? [])]) this.l1.delete(key);
          this.#tagIndex.delete(tag);
        }
        break;
      case 'clear':
        for (const prefix of message.k) {
          this.#clearL1(prefix);
          this.#runs.supersedePrefix(prefix);
        }
        break;
      case 'exp': {
        const now = this.clock.now();
        for (const key of message.k) {
          this.#expireL1(key, now);
          this.#runs.supersedeKey(key);
        }
        break;
      }
      case 'exptag': {
        const now = this.clock.now();
        this.#runs.supersedeTags(message.k);
        for (const tag of message.k) {
          for (const key of [...(this.#tagIndex.get(tag) ?? [])]) this.#expireL1(key, now, message.k);
        }
        break;
      }
      default:
        // A kind from a newer release: ignored, neither applied nor reported as applied.
        return;
    }
    for (const listener of this.busListeners) listener(message);
    const received = this.#listeners.invalidation;
    if (received) this.events.emit('invalidation', received, message);
  }

  /** Observers of applied bus messages from other instances (measurements and tests). */
  readonly busListeners = new Set<(message: BusMessage) => void>();

  #sleepOrWake(fullKey: string, ms: number): Promise<void> {
    return new Promise((resolve) => {
      let waiters = this.#waiters.get(fullKey);
      if (!waiters) {
        waiters = new Set();
        this.#waiters.set(fullKey, waiters);
      }
      const done = () => {
        clearTimeout(timer);
        const set = this.#waiters.get(fullKey);
        set?.delete(done);
        if (set?.size === 0) this.#waiters.delete(fullKey);
        resolve();
      };
      const timer = setTimeout(done, ms);
      timer.unref();
      waiters.add(done);
    });
  }

  #wake(fullKey: string): void {
    const waiters = this.#waiters.get(fullKey);
    if (!waiters) return;
    for (const wake of [...waiters]) wake();
  }
}

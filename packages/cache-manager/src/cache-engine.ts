import { randomUUID } from 'node:crypto';
import {
  type Clock,
  ClosedError,
  childLogger,
  type Logger,
  reviveSentinelClient,
  silentLogger,
  systemClock,
  withDeadline,
} from '@noa/core';
import { InvalidationBus } from './bus.js';
import { applyBusMessage } from './bus-handling.js';
import type { BusMessage } from './bus-message.js';
import { BusyLeases } from './busy-leases.js';
import { CacheEvents, type StaleReason } from './cache-events.js';
import type {
  Factory,
  GetOrSetOptions,
  ManyFactory,
  ResolvedCacheOptions,
  SetOptions,
} from './cache-options.js';
import { watchSteps } from './clock-steps.js';
import { DecodeTurns } from './decode-turns.js';
import { type CacheEntry, isFresh, newerEntry, scopeTags, slideEntry } from './entry.js';
import { FactoryRuns } from './factory-runs.js';
import { FillGuard } from './fill-guard.js';
import { HungRuns } from './hung-runs.js';
import { clearPrefix, deleteByTags, deleteKeys, expireByTags, expireKeys } from './invalidation.js';
import { KeyWakeups } from './key-wakeups.js';
import { createL1Store } from './l1/create-l1-store.js';
import type { L1Store, RemovalReason } from './l1/l1-store.js';
import { NoL1Store } from './l1/no-l1-store.js';
import { onConnectionClose } from './l2/connection-close.js';
import {
  clusterResendWindowMs,
  ioRedisClient,
  isCluster,
  sentinelWithoutFailoverDetector,
} from './l2/ioredis-client.js';
import { RedisGuard } from './l2/redis-guard.js';
import { RedisTier, readAt } from './l2/redis-tier.js';
import { CacheMetrics } from './metrics.js';
import { decodeEntry, getManyEntries, l1Charge } from './read-path.js';
import {
  abandonRun,
  type Flight,
  flightLimits,
  joinableFlight,
  joinFlight,
  loadThrough,
  type RunningFactory,
  refreshIfDue,
  sameLimits,
} from './read-through.js';
import { getOrSetMany } from './read-through-many.js';
import { EntryCodec } from './serialization/entry-codec.js';
import { SharedStructures } from './serialization/shared-structures.js';
import { copyOfFlight, deepFreeze, frozenForJoiner } from './value-copies.js';
import { WriteIds } from './write-ids.js';
import { writeValue } from './writes.js';

/** One L1 lookup in this many is timed into the latency histogram (when metrics are on). */
const l1TimingEvery = 64;

/**
 * Everything a cache and its namespace views share: the tiers, the bus, in-flight loads. All
 * methods take full keys (namespace included). `Cache` is the public face. The L1 parts of
 * `get` and `getOrSet` live here, a direct synchronous path; the rest of each operation is in
 * the module named for it (read-path, read-through, read-through-many, writes, invalidation,
 * bus-handling), which works on the state shared here.
 */
export class CacheEngine {
  readonly options: ResolvedCacheOptions;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: CacheMetrics;
  readonly l1: L1Store;
  /**
   * False for an L2-only cache (`l1: false`): {@link l1} is a {@link NoL1Store}, and the work that
   * only serves L1 (fills, their guard, tag indexing, freezing, copies) is skipped.
   */
  readonly l1Enabled: boolean;
  /**
   * How values leave L1 (`l1.mode`). An L2-only cache has `reference`: it keeps no value, and
   * each read decodes its own.
   */
  readonly l1Mode: 'reference' | 'freeze' | 'clone';
  readonly tier: RedisTier | undefined;
  readonly bus: InvalidationBus | undefined;
  readonly codec: EntryCodec;
  /** Shared msgpack record structures (with Redis; written with msgpack + `sharedStructures`). */
  readonly structures: SharedStructures | undefined;
  readonly instanceId = randomUUID();
  /** Event listeners (`Cache.on`); every emitting site first checks its event's list. */
  readonly events: CacheEvents;
  /** `events.lists`, one load closer to the read paths. */
  readonly listeners: CacheEvents['lists'];
  /** A uniform draw in (0, 1] for XFetch (injectable for tests). */
  readonly random: () => number;
  /** L1 keys by tag (the L2 tag sets' counterpart, for `deleteByTag` without scans). */
  readonly tagIndex = new Map<string, Set<string>>();
  /**
   * The tags each tagged L1 key is indexed under: an overwrite is no removal for the stores,
   * so without it the tags a key was rewritten without would stay in {@link tagIndex}.
   */
  readonly #indexedTags = new Map<string, readonly string[]>();
  /** In-process single flight: the load in progress of each key, with its timeouts (see `joinFlight`). */
  readonly flights = new Map<string, Flight>();
  /** L2 values that arrive together are decoded one at a time (see {@link DecodeTurns}). */
  readonly decodeTurns = new DecodeTurns();
  /** Factory runs in progress by key, for callers that come after their first ones gave up. */
  readonly running = new Map<string, RunningFactory<unknown>>();
  /**
   * Keys with an early refresh (XFetch, refresh-ahead) in progress, each with its refresh: the
   * key is freed by its own refresh only, which one abandoned past `lock.leaseMs` is not.
   */
  readonly refreshing = new Map<string, object>();
  /** L2-only: refresh leases found busy, not asked for again for a while (see {@link BusyLeases}). */
  readonly busyLeases = new BusyLeases();
  /** Callers waiting for another instance's lease, woken by the bus. */
  readonly wakeups = new KeyWakeups();
  /** Observers of applied bus messages from other instances (measurements and tests). */
  readonly busListeners = new Set<(message: BusMessage) => void>();
  /** Factory runs in progress by full key (see {@link FactoryRun}). */
  readonly runs = new FactoryRuns(() => this.bus?.awaitingResync === true);
  /**
   * `getOrSet` factory runs in progress (and early refreshes), swept every half lease: a run past
   * `max(lock.leaseMs, hardTimeoutMs)` that nobody awaits or another run replaced is given up
   * (see `abandonRun`).
   */
  readonly hungRuns: HungRuns<RunningFactory<unknown>>;
  /** Changes that reached a key while an L2 read of it was in flight (see {@link fill}). */
  readonly fills = new FillGuard();
  /** Ids of this instance's L2 writes (see {@link WriteIds}). */
  readonly writeIds = new WriteIds();
  readonly #background = new Set<Promise<unknown>>();
  /** The `ctx.signal` controllers of the factory runs in progress (see {@link runSignal}). */
  readonly #runAborts = new Set<AbortController>();
  /** Set once `close()` stopped waiting: a run that starts after gets an aborted signal. */
  #runsAborted = false;
  #closed = false;
  readonly #closing = new AbortController();
  /** L1 lookups since the last timed one (see `l1Get`). */
  #l1Lookups = 0;
  #stopWatchingConnection: (() => void) | undefined;
  /** Stops {@link reviveSentinelClient}'s watch of the user's Sentinel client, at close. */
  #stopReviving: (() => void) | undefined;
  /** Resolves when start-up work (bus subscription, hot-key warm-up) is done. */
  readonly ready: Promise<void>;

  constructor(options: ResolvedCacheOptions) {
    this.options = options;
    this.logger = childLogger(options.logger ?? silentLogger, { component: 'cache-manager' });
    const wallClock = options.clock ?? systemClock;
    const maxTtlMs = options.l1 === false ? undefined : options.l1.maxTtlMs;
    // L1's copies are capped at `maxTtlMs` from when they were put, on the wall clock: stepped
    // back an hour, the cap held them an hour longer, a lost invalidation included.
    this.clock =
      maxTtlMs === undefined ? wallClock : watchSteps(wallClock, (stepMs) => this.#onClockStepBack(stepMs));
    this.metrics = new CacheMetrics(options.registry, options.name);
    this.hungRuns = new HungRuns(Math.max(1, Math.floor(options.lock.leaseMs / 2)), (running, runningMs) =>
      abandonRun(this, running, runningMs),
    );
    this.events = new CacheEvents(this.logger);
    this.listeners = this.events.lists;
    this.random = options.random ?? (() => 1 - Math.random());
    const l1 = options.l1;
    this.l1Enabled = l1 !== false;
    this.l1Mode = l1 === false ? 'reference' : l1.mode;
    this.l1 =
      l1 === false
        ? new NoL1Store()
        : createL1Store(l1.policy, l1.maxEntries, l1.maxBytes, (key, entry, reason) =>
            this.#onL1Removal(key, entry, reason),
          );
    if (options.redis) {
      const client = ioRedisClient(options.redis);
      const guard = new RedisGuard({
        operationTimeoutMs: options.operationTimeoutMs,
        breaker: options.breaker,
        onBackendError: options.onBackendError,
        metrics: this.metrics,
        logger: this.logger,
        logIntervalMs: options.logIntervalMs,
      });
      const clock = this.clock;
      this.tier = new RedisTier(
        client,
        options.prefix,
        guard,
        () => clock.now(),
        options.batching,
        options.slidingTtlMs !== undefined,
        {
          pruned: (tag, sampled, removed) => {
            this.metrics.tagMembersPruned(removed);
            this.logger.debug('tag set pruned', { tag, sampled, removed });
          },
          refused: (error) =>
            this.logger.warn(
              'Redis refused a command of tag set pruning (an ACL without +srandmember?): tag sets are not pruned on this instance, and keep naming expired and deleted keys until they expire; add +srandmember to the ACL user (see "Production Redis" in the README)',
              { error: String(error) },
            ),
        },
      );
      // Only for a cache given a logger: the warning is all it is for.
      if (options.logger !== undefined)
        this.tier.warnIfTagsMayBeEvicted((policy) =>
          this.logger.warn(
            `Redis has a maxmemory with maxmemory-policy ${policy}: it may evict tag sets, and deleteByTag/expireByTag then miss the values an evicted set named (served until their TTL); give a cache that relies on tags a Redis with maxmemory-policy noeviction (see "Production Redis" in the README)`,
            { maxmemoryPolicy: policy },
          ),
        );
      // Every Redis cache can read values written with shared structures; only msgpack caches
      // with `sharedStructures` write them (and load the list at start).
      const structures = new SharedStructures(this.tier, (error) =>
        this.logger.warn('shared msgpack structures could not be synchronised', { error: String(error) }),
      );
      this.structures = structures;
      this.#stopWatchingConnection = onConnectionClose(client, () => structures.distrust());
      const resendMs = clusterResendWindowMs(client);
      if (resendMs > options.operationTimeoutMs) {
        // Found with one master cut off from one instance (cut-connection.test.ts): a write
        // the cache gave up on and counted as lost landed a second later over another
        // instance's newer value, which every instance then served.
        this.logger.warn(
          'this Cluster client resends a command whose node connection closed for longer than operationTimeoutMs: a write the cache counted as lost may land over a later one; create it with retryDelayOnFailover: 0',
          { resendWindowMs: resendMs, operationTimeoutMs: options.operationTimeoutMs },
        );
      }
      if (sentinelWithoutFailoverDetector(client)) {
        // Found with a SENTINEL FAILOVER (sentinel-failover.test.ts): the writes of the ~10 s the
        // client stayed on the old master were lost, and every instance, its L1 dropped on the
        // bus reconnect, then served the values from before them.
        this.logger.warn(
          'this Sentinel client stays on the old master for about 10 s after a failover, and the writes it makes there are lost; create it with failoverDetector: true',
        );
      }
      // With the failover detector, ioredis can end a Sentinel client for good in a failover
      // (sentinel-failover.test.ts, kill case, on a loaded machine): @noa/core reconnects it.
      if (!isCluster(client))
        this.#stopReviving = reviveSentinelClient(client, () =>
          this.logger.warn(
            'ioredis ended this Sentinel client in a failover (the switch was announced while it looked up the master); reconnecting it',
          ),
        );
      if (options.bus) {
        this.bus = new InvalidationBus({
          tier: this.tier,
          channel: `${options.prefix}__bus`,
          instanceId: this.instanceId,
          onMessage: (message) => applyBusMessage(this, message),
          onResync: (keys) => {
            if (keys === undefined) {
              // Messages were missed: a run in progress may have missed the one that changed its
              // key, so each caches its result only if L2 shows no change (see `runFactory`).
              this.l1.clear();
              this.fills.changedPrefix('');
              this.runs.suspectAll();
            } else {
              for (const key of keys) {
                this.l1.delete(key);
                this.fills.changedKey(key);
              }
            }
          },
          onConnectionLost: () => this.runs.connectionLost(),
          startTimeoutMs: options.operationTimeoutMs,
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
      options.compression.maxDecompressedBytes,
    );
    const writeShared = options.sharedStructures && options.serializer === 'msgpack';
    // The hot keys are read once the structures are loaded (they may need them), and once the
    // bus listens: read before, a hot value another instance changed before the SUBSCRIBE took
    // effect stayed in L1 (its message lost to this one) for its TTL, `ready()` awaited or not.
    // A bus not subscribed by then drops L1 when it is, as it does for any read before that.
    const structuresLoaded = writeShared ? this.structures?.load() : undefined;
    this.ready = Promise.all([this.bus?.ready, structuresLoaded])
      .then(() => this.#warmHotKeys())
      .then(
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

  /**
   * Saves the L1's most valuable keys to Redis for the next start. Not for an L2-only cache: it
   * has none, and saving none would delete the set that instances with L1 saved under the prefix.
   */
  async saveHotKeys(limit: number): Promise<void> {
    if (!this.tier || limit === 0 || !this.l1Enabled) return;
    await this.tier.saveHotKeys(this.l1.hottest(limit));
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Aborted (with a `ClosedError`) as `close()` starts, so long calls such as `warm` end with it. */
  get closing(): AbortSignal {
    return this.#closing.signal;
  }

  /** L1 only: the fresh value or undefined, synchronously. */
  getLocal(fullKey: string): CacheEntry | undefined {
    const now = this.clock.now();
    const entry = this.l1.get(fullKey, now);
    if (entry === undefined || !isFresh(entry, now)) return undefined;
    if (entry.slidingMs) slideEntry(entry, now);
    return entry;
  }

  /** Copies a value out of L1 according to the `l1.mode` option. */
  out<T>(value: T): T {
    return this.l1Mode === 'clone' ? structuredClone(value) : value;
  }

  // ---- reads (the L1 part; the rest is in read-path.ts) ----------------------------------

  /**
   * `l1.get`, with one lookup in {@link l1TimingEvery} timed into the latency histogram when
   * metrics are on (timing every lookup would cost more than the lookup itself).
   */
  l1Get(fullKey: string, now: number): CacheEntry | undefined {
    if (!this.metrics.enabled) return this.l1.get(fullKey, now);
    this.#l1Lookups = (this.#l1Lookups + 1) % l1TimingEvery;
    // An L2-only cache has no lookup to time.
    if (this.#l1Lookups !== 0 || !this.l1Enabled) return this.l1.get(fullKey, now);
    const started = performance.now();
    const entry = this.l1.get(fullKey, now);
    this.metrics.latency('l1', 'get', (performance.now() - started) / 1_000);
    return entry;
  }

  /** The fresh entry of `fullKey`, from L1 then L2; undefined when absent or expired. */
  get(fullKey: string): Promise<CacheEntry | undefined> {
    return this.#lookup(fullKey, false) as Promise<CacheEntry | undefined>;
  }

  /** {@link get}'s value, copied out per `l1.mode` (`Cache.get`: no second promise to unwrap it). */
  getValue<T>(fullKey: string): Promise<T | undefined> {
    return this.#lookup(fullKey, true) as Promise<T | undefined>;
  }

  /**
   * The L1 part of `get`, synchronous; an L1 miss goes on in {@link #lookupL2}. `asValue`
   * returns the value (copied out) rather than the entry. Not async, and the L2 part is one
   * async function: each async layer costs an L2 hit a promise, a suspended frame and a
   * microtask hop, a measurable share of the work beyond the decode.
   */
  #lookup(fullKey: string, asValue: boolean): Promise<unknown> {
    const now = this.clock.now();
    const local = this.l1Get(fullKey, now);
    if (local !== undefined && isFresh(local, now)) {
      if (local.slidingMs) slideEntry(local, now);
      this.metrics.request('l1', 'hit');
      if (this.listeners.hit) this.emitHit(fullKey, 'l1');
      return asValue ? this.#outAsPromise(local.value) : Promise.resolve(local);
    }
    this.metrics.request('l1', local ? 'stale' : 'miss');
    if (this.tier) return this.#lookupL2(fullKey, asValue);
    if (this.listeners.miss) this.emitMiss(fullKey);
    return Promise.resolve(undefined);
  }

  /** {@link out} as a promise: a clone that throws rejects it, as it did in an async `get`. */
  #outAsPromise(value: unknown): Promise<unknown> {
    try {
      return Promise.resolve(this.out(value));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * `get` after an L1 miss: the L2 read, decoded, put in L1 when fresh (as `readL2`, inlined).
   * A fresh value that a change of its key overtook (see {@link FillGuard}) is read `again`,
   * once: that read starts after the change, so it is current, and fills L1.
   */
  async #lookupL2(fullKey: string, asValue: boolean, again = false): Promise<unknown> {
    const since = this.fills.epoch;
    // Joined to the turn's read batch, awaiting its one promise (no promise of this read's own).
    const slot = this.tier!.joinRead(fullKey);
    const bytes = slot === undefined ? await this.tier!.get(fullKey) : readAt(await slot.results, slot.index);
    let entry: CacheEntry | undefined;
    if (bytes) {
      const loading = this.codec.prepare(bytes);
      if (loading) await loading;
      // One decode at a time (see DecodeTurns): no await from here to the return.
      const turn = this.decodeTurns.take(bytes);
      if (turn) await turn;
      entry = decodeEntry(this, fullKey, bytes);
    }
    const later = this.clock.now();
    if (entry && isFresh(entry, later)) {
      // L2-only: nothing to fill, and no second read: the value is L2's as of after the call began.
      let fillable = false;
      if (this.l1Enabled) {
        fillable = this.fills.mayFill(fullKey, entry.tags, since, entry.writeId);
        if (!fillable && !again) return this.#lookupL2(fullKey, asValue, true);
      }
      if (entry.slidingMs) slideEntry(entry, later);
      this.metrics.request('l2', 'hit');
      if (fillable) this.l1Set(fullKey, entry, l1Charge(bytes!, entry));
      if (this.listeners.hit) this.emitHit(fullKey, 'l2');
      return asValue ? this.out(entry.value) : entry;
    }
    this.metrics.request('l2', entry ? 'stale' : 'miss');
    if (this.listeners.miss) this.emitMiss(fullKey);
    return undefined;
  }

  getMany(fullKeys: readonly string[]): Promise<(CacheEntry | undefined)[]> {
    return getManyEntries(this, fullKeys);
  }

  // ---- read-through (the L1 part and the single flight; the rest is in read-through.ts) --

  getOrSet<T>(fullKey: string, userKey: string, factory: Factory<T>, options: GetOrSetOptions): Promise<T> {
    const now = this.clock.now();
    const entry = this.l1Get(fullKey, now);
    const forced = options.forceFresh === true;
    if (entry !== undefined && now < entry.expiresAt && !forced) {
      if (entry.slidingMs) slideEntry(entry, now);
      this.metrics.request('l1', 'hit');
      if (this.listeners.hit) this.emitHit(fullKey, 'l1');
      refreshIfDue(this, fullKey, userKey, factory, options, entry, now);
      return Promise.resolve(this.out(entry.value as T));
    }
    if (!forced) this.metrics.request('l1', entry ? 'stale' : 'miss');
    const inflight = this.flights.get(fullKey);
    // A forced call joins only a forced load: a plain one may end in the cached value.
    if (inflight && (!forced || inflight.forced) && joinableFlight(this, inflight, fullKey, userKey)) {
      const promise = inflight.promise as Promise<T>;
      const shared = sameLimits(inflight.limits, flightLimits(this, options))
        ? promise
        : joinFlight(
            this,
            {
              fullKey,
              userKey,
              factory,
              options,
              stale: newerEntry(entry, inflight.stale) as CacheEntry<T> | undefined,
              // L1's copy, current as looked up in this turn (see `KeyLoad.staleSince`).
              staleSince: this.fills.epoch,
            },
            promise,
          );
      const mode = this.l1Mode;
      if (mode === 'reference') return shared;
      return mode === 'clone' ? shared.then(copyOfFlight) : shared.then(frozenForJoiner);
    }
    // Its promise is the load's, set right below: the load only writes the flight's `stale`.
    const flight = { limits: flightLimits(this, options), forced, since: this.fills.epoch } as Flight;
    const load = loadThrough(
      this,
      fullKey,
      userKey,
      factory,
      options,
      entry as CacheEntry<T> | undefined,
      flight,
    ).finally(() => {
      // A forced call may have replaced this flight with its own.
      if (this.flights.get(fullKey) === flight) this.flights.delete(fullKey);
    });
    flight.promise = load;
    this.flights.set(fullKey, flight);
    // The flight resolves to the object L1 holds (or the factory's, which other callers share):
    // in clone mode the caller that started it gets a copy like everyone else.
    return this.l1Mode === 'clone' ? load.then(copyOfFlight) : load;
  }

  /** Batch read-through (see `Cache.getOrSetMany` and read-through-many.ts). */
  getOrSetMany<T>(
    fullKeys: readonly string[],
    userKeys: readonly string[],
    factoryMany: ManyFactory<T>,
    options: SetOptions,
  ): Promise<(T | undefined)[]> {
    return getOrSetMany(this, fullKeys, userKeys, factoryMany, options);
  }

  // ---- writes and invalidation (writes.ts, invalidation.ts) ------------------------------

  /** Writes through L1, then L2 (awaited or in background), then tells other instances. */
  write(fullKey: string, value: unknown, options: SetOptions, computeMs = 0): Promise<void> {
    return writeValue(this, fullKey, value, options, computeMs);
  }

  delete(fullKeys: string[]): Promise<boolean> {
    return deleteKeys(this, fullKeys);
  }

  /**
   * `deleteByTag` of stored tag names (see {@link tagsOf}); `named`: as the caller named them,
   * for the edge purge.
   */
  deleteByTags(tags: readonly string[], named: readonly string[] = tags): Promise<number> {
    return deleteByTags(this, tags, named);
  }

  /** Soft invalidation: see `Cache.expire`. */
  expire(fullKeys: readonly string[]): Promise<void> {
    return expireKeys(this, fullKeys);
  }

  expireByTags(tags: readonly string[]): Promise<number> {
    return expireByTags(this, tags);
  }

  clear(fullPrefix: string): Promise<void> {
    return clearPrefix(this, fullPrefix);
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

  /**
   * A factory run's `ctx.signal` controller: aborted (a `ClosedError` its reason) when `close()`
   * stops waiting, already aborted if it has. `endRun` forgets it once the run settles. One
   * controller per run, never on the hit path.
   */
  runSignal(): AbortController {
    const controller = new AbortController();
    if (this.#runsAborted) controller.abort(new ClosedError('cache-manager'));
    else this.#runAborts.add(controller);
    return controller;
  }

  endRun(controller: AbortController): void {
    this.#runAborts.delete(controller);
  }

  /**
   * Waits up to `waitMs` for background work, then (when it did not all settle in time, or at
   * once with 0) aborts the `ctx.signal` of every factory run still in progress.
   */
  async close(waitMs = 5_000): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing.abort(new ClosedError('cache-manager'));
    // From here on only close() aborts runs, as before: `waitMs` is the runs' budget.
    this.hungRuns.close();
    // Tracked promises never reject: a rejection here can only be the deadline.
    const gaveUp =
      waitMs === 0
        ? true
        : await withDeadline(Promise.all([...this.#background]), waitMs, 'cache close').then(
            () => false,
            () => true,
          );
    if (gaveUp) this.#abortRuns();
    await this.saveHotKeys(this.options.hotKeys);
    await this.structures?.settled();
    this.#stopWatchingConnection?.();
    this.#stopReviving?.();
    this.wakeups.wakeAll();
    await this.bus?.close();
    this.metrics.close();
  }

  /** Tells every factory run still in progress, and any started from now on, to stop. */
  #abortRuns(): void {
    this.#runsAborted = true;
    const reason = new ClosedError('cache-manager');
    const controllers = [...this.#runAborts];
    this.#runAborts.clear();
    for (const controller of controllers) controller.abort(reason);
  }

  // ---- shared by the operation modules -------------------------------------------------

  // Out of line so the read paths stay small; callers check the list first.
  emitHit(fullKey: string, tier: 'l1' | 'l2'): void {
    const listeners = this.listeners.hit;
    if (listeners) this.events.emit('hit', listeners, { key: fullKey, tier });
  }

  emitMiss(fullKey: string): void {
    const listeners = this.listeners.miss;
    if (listeners) this.events.emit('miss', listeners, { key: fullKey });
  }

  /** Counts and reports a stale value served in place of a fresh one. */
  servedStale(fullKey: string, reason: StaleReason): void {
    this.metrics.staleServed(reason);
    const listeners = this.listeners.stale;
    if (listeners) this.events.emit('stale', listeners, { key: fullKey, reason });
  }

  /**
   * Puts an entry read from L2 in L1 ({@link l1Set}), unless a change reached its key since the
   * read started at `since` (`fills.epoch` then): the read answered with the value from before
   * that change (see {@link FillGuard}). The caller is served the value either way.
   */
  fill(fullKey: string, entry: CacheEntry, bytes: number, since: number): void {
    if (!this.l1Enabled) return;
    if (this.fills.mayFill(fullKey, entry.tags, since, entry.writeId)) this.l1Set(fullKey, entry, bytes);
  }

  /** The tags of an entry of `fullKey` as stored: scoped to its namespace unless `tagScope: 'global'`. */
  tagsOf(fullKey: string, tags: readonly string[]): readonly string[] {
    return this.options.tagScope === 'global' ? tags : scopeTags(fullKey, tags);
  }

  /**
   * Puts an entry in L1 (capped by `l1.maxTtlMs`, frozen in freeze mode) and indexes its tags;
   * nothing at all in an L2-only cache.
   */
  l1Set(fullKey: string, entry: CacheEntry, bytes: number): void {
    const l1 = this.options.l1;
    if (l1 === false) return;
    const maxTtlMs = l1.maxTtlMs;
    let local = entry;
    if (maxTtlMs !== undefined) {
      const cap = this.clock.now() + maxTtlMs;
      // The cap bounds sliding too: past it, the L1 copy goes back to L2 like any other.
      if (entry.expiresAt > cap || (entry.slidingMs && entry.maxExpiresAt! > cap))
        local = { ...entry, expiresAt: Math.min(entry.expiresAt, cap), maxExpiresAt: cap };
    }
    if (l1.mode === 'freeze') deepFreeze(local.value);
    // Indexed before the store takes it: a policy may drop the new entry on the way in (the
    // soonest to expire under `ttl`, a byte budget's victim), and its removal then unindexes it.
    // Indexed after, every such entry stayed in the tag index for good.
    const fits = bytes <= l1.maxBytes;
    if (fits) this.#indexTags(fullKey, local.tags);
    this.l1.set(fullKey, local, bytes);
    // Too big for L1, the store dropped it (and any older copy, whose tags went with it).
    if (!fits) this.#tooLarge(fullKey, bytes, l1.maxBytes);
    if (this.metrics.enabled) this.metrics.l1Size(this.l1.size, this.l1.bytes);
  }

  /**
   * A value L1 did not keep, larger than `l1.maxBytes` alone: counted, and logged. Memory only
   * it is lost (the `set` resolved, the next `get` misses), a warning; with Redis, L2 has it
   * and every read of it goes there, a debug line.
   */
  #tooLarge(fullKey: string, bytes: number, maxBytes: number): void {
    this.metrics.eviction('l1', 'too_large');
    const fields = { key: fullKey, bytes, maxBytes };
    if (this.tier) this.logger.debug('value larger than l1.maxBytes: served from Redis only', fields);
    else this.logger.warn('value larger than l1.maxBytes not cached (memory-only cache)', fields);
  }

  /** Indexes an L1 key under `tags`, and no longer under the tags of the entry it replaced. */
  #indexTags(fullKey: string, tags: readonly string[]): void {
    const previous = this.#indexedTags.get(fullKey);
    if (previous === tags) return;
    if (previous) {
      for (const tag of previous) if (!tags.includes(tag)) this.#unindexTag(tag, fullKey);
    }
    if (tags.length === 0) {
      if (previous) this.#indexedTags.delete(fullKey);
      return;
    }
    this.#indexedTags.set(fullKey, tags);
    for (const tag of tags) {
      let keys = this.tagIndex.get(tag);
      if (!keys) {
        keys = new Set();
        this.tagIndex.set(tag, keys);
      }
      keys.add(fullKey);
    }
  }

  #unindexTag(tag: string, fullKey: string): void {
    const keys = this.tagIndex.get(tag);
    if (!keys) return;
    keys.delete(fullKey);
    if (keys.size === 0) this.tagIndex.delete(tag);
  }

  /**
   * The wall clock went back `stepMs` (see `watchSteps`): every L1 copy's `l1.maxTtlMs` cap was
   * measured on the old time and would hold it that much longer, so L1 is dropped, as after lost
   * bus messages; copies put from now on are capped on the new time. A fill in flight sees the
   * change and makes no copy (it may have read before a change it will not hear of).
   */
  #onClockStepBack(stepMs: number): void {
    this.logger.warn('the clock went back; L1 dropped so that l1.maxTtlMs still bounds its copies', {
      stepMs,
    });
    this.l1.clear();
    this.fills.changedPrefix('');
  }

  #onL1Removal(fullKey: string, entry: CacheEntry, reason: RemovalReason): void {
    const tags = this.#indexedTags.get(fullKey) ?? entry.tags;
    this.#indexedTags.delete(fullKey);
    for (const tag of tags) this.#unindexTag(tag, fullKey);
    if (reason !== 'deleted') this.metrics.eviction('l1', reason);
    // The stores report a removal once it is done, so the sizes read here are current.
    if (this.metrics.enabled) this.metrics.l1Size(this.l1.size, this.l1.bytes);
  }
}

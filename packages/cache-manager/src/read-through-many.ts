import { randomUUID } from 'node:crypto';
import type { CacheEngine } from './cache-engine.js';
import type { Factory, ManyFactory, SetOptions } from './cache-options.js';
import { type CacheEntry, slideEntry } from './entry.js';
import { FactoryError, SerializationError } from './errors.js';
import type { FactoryRun } from './factory-runs.js';
import type { LeaseResult } from './l2/redis-tier.js';
import { alignMany, ManyResultShapeError, type Settler, settle } from './many-results.js';
import { type L2Held, readManyFromL2, seenManyInL2 } from './read-path.js';
import {
  backOff,
  computeOnce,
  type Flight,
  type FlightLimits,
  flightLimits,
  joinableFlight,
  joinFlight,
  sameLimits,
  unchangedOrNot,
} from './read-through.js';
import { ReplacedValueKeeper } from './replaced-value-keeper.js';
import { copyOfFlight, frozenForJoiner } from './value-copies.js';
import {
  awaitInOrder,
  type PreparedWrite,
  prepareWrite,
  sendWrites,
  skipWrite,
  writeLocal,
} from './writes.js';

/** `getOrSetMany` waits without timeouts. */
const NO_LIMITS: FlightLimits = { softTimeoutMs: undefined, hardTimeoutMs: undefined };

/** One `getOrSetMany` call's keys and what its computing steps share. */
interface ManyLoad<T> {
  fullKeys: readonly string[];
  userKeys: readonly string[];
  /** The flight of each index this call computes, settled by whoever ends up with its value. */
  settlers: Map<number, Settler<T>>;
  factoryMany: ManyFactory<T>;
  options: SetOptions;
  /** The newest entry in grace per index, served when the factory fails. */
  stale: Map<number, CacheEntry<T>>;
  /** `fills.epoch` as the call started, before its L1 and L2 reads (see `KeyLoad.staleSince`). */
  staleSince: number;
  /**
   * What L2 held per index when last read before the run (as `KeyLoad.l2Seen`): absent when
   * not read or the read failed. A run that spans a bus reconnect caches a key's value only if
   * L2 still holds the same (see {@link checkL2}).
   */
  seen: Map<number, number | null>;
  /**
   * What L2 held per index when last read before the run, as `KeyLoad.l2Held` (bytes as stored,
   * null: no value; tags and write id when decoded): the key's value is written only if L2
   * still holds those bytes (compare-and-set), so a change another instance made during the run
   * is not overwritten, and the late bus message of that write does not supersede the run.
   * Absent when not read or the read failed: written as before.
   */
  held: Map<number, L2Held>;
}

/**
 * Lease calls (SET NX, release) sent to Redis at once. All of a large batch at once, the calls
 * queued in Redis past their own deadlines: with 20,000 cold keys thousands "failed" (opening
 * the breaker) while their SET NX still landed, and every lease stayed held until `leaseMs`.
 */
const LEASE_BATCH_KEYS = 256;

/** `call` for each of `items`, {@link LEASE_BATCH_KEYS} at a time; results in order. */
async function inBatches<I, R>(items: readonly I[], call: (item: I) => Promise<R>): Promise<R[]> {
  if (items.length <= LEASE_BATCH_KEYS) return Promise.all(items.map(call));
  const results: R[] = [];
  for (let start = 0; start < items.length; start += LEASE_BATCH_KEYS) {
    results.push(...(await Promise.all(items.slice(start, start + LEASE_BATCH_KEYS).map(call))));
  }
  return results;
}

/** A flight's value for one more caller (a copy in clone mode, a frozen one in freeze mode, as `getOrSet` hands out). */
function handOut<T>(engine: CacheEngine, value: T): T {
  const mode = engine.l1Mode;
  if (mode === 'reference') return value;
  return mode === 'clone' ? copyOfFlight(value) : frozenForJoiner(value);
}

/**
 * Batch read-through over distinct keys (see `Cache.getOrSetMany`): L1, then one L2 read for
 * the rest, then one `factoryMany` call for the keys still missing that this instance holds
 * the lease of. Keys computed elsewhere are awaited, here through their flight, across
 * instances through their lease. Results are aligned with `fullKeys`.
 */
export async function getOrSetMany<T>(
  engine: CacheEngine,
  fullKeys: readonly string[],
  userKeys: readonly string[],
  factoryMany: ManyFactory<T>,
  options: SetOptions,
): Promise<(T | undefined)[]> {
  const results = new Array<T | undefined>(fullKeys.length);
  const staleSince = engine.fills.epoch;
  const joined: Promise<void>[] = [];
  const stale = new Map<number, CacheEntry<T>>();
  const seen = new Map<number, number | null>();
  const held = new Map<number, L2Held>();
  /** The keys whose load failed, and how (the call throws the first one's, see below). */
  const failures = new Map<number, unknown>();
  const join = (index: number, { promise, limits }: Flight) => {
    // A getOrSet flight with timeouts: not its caller's timeout error or stale value, the run's.
    const fullKey = fullKeys[index]!;
    const inFlight = promise as Promise<T>;
    const flight =
      limits === undefined || sameLimits(limits, NO_LIMITS)
        ? inFlight
        : joinFlight(
            engine,
            { fullKey, userKey: userKeys[index]!, factory: () => inFlight, options: {}, stale: undefined },
            inFlight,
            NO_LIMITS,
            true,
          );
    return joined.push(
      flight.then(
        (value) => {
          results[index] = handOut(engine, value);
        },
        (error: unknown) => {
          failures.set(index, error);
        },
      ),
    );
  };
  let rest: number[] = [];
  const now = engine.clock.now();
  for (let index = 0; index < fullKeys.length; index += 1) {
    const fullKey = fullKeys[index]!;
    const entry = engine.l1Get(fullKey, now);
    if (entry !== undefined && now < entry.expiresAt) {
      if (entry.slidingMs) slideEntry(entry, now);
      engine.metrics.request('l1', 'hit');
      if (engine.listeners.hit) engine.emitHit(fullKey, 'l1');
      results[index] = engine.out(entry.value as T);
      continue;
    }
    engine.metrics.request('l1', entry ? 'stale' : 'miss');
    if (entry) stale.set(index, entry as CacheEntry<T>);
    const flight = engine.flights.get(fullKey);
    if (flight && joinableFlight(engine, flight, fullKey, userKeys[index]!)) join(index, flight);
    else rest.push(index);
  }
  if (engine.tier && rest.length > 0)
    rest = await readManyFromL2(engine, fullKeys, rest, results, stale, seen, held);
  // Flights started by other callers while L2 answered are joined, not duplicated.
  const mine: number[] = [];
  for (const index of rest) {
    const flight = engine.flights.get(fullKeys[index]!);
    if (flight && joinableFlight(engine, flight, fullKeys[index]!, userKeys[index]!)) join(index, flight);
    else mine.push(index);
  }
  if (mine.length > 0) {
    const settlers = new Map<number, Settler<T>>();
    for (const index of mine) {
      const fullKey = fullKeys[index]!;
      if (engine.listeners.miss) engine.emitMiss(fullKey);
      const settler = settle<T>();
      settlers.set(index, settler);
      const flight = settler.promise.finally(() => {
        if (engine.flights.get(fullKey)?.promise === flight) engine.flights.delete(fullKey);
      });
      // Handled here; joiners and this call still see the rejection.
      flight.catch(() => {});
      // Its value in grace (L1's or L2's) is a joining getOrSet's too (see `Flight.stale`).
      const own: Flight = {
        promise: flight,
        startedAt: Date.now(),
        stale: stale.get(index),
        since: staleSince,
      };
      engine.flights.set(fullKey, own);
      join(index, own);
    }
    try {
      await computeMany(
        engine,
        { fullKeys, userKeys, settlers, factoryMany, options, stale, staleSince, seen, held },
        mine,
      );
    } catch (error) {
      // Settles what is left (settling twice is a no-op): a flight that never settles would
      // hang every later caller of its key.
      for (const settler of settlers.values()) settler.reject(error);
    }
  }
  await Promise.all(joined);
  if (failures.size > 0) throw failedMany(failures, userKeys, results);
  return results;
}

/**
 * The error a `getOrSetMany` call with failed keys throws: the first failed key's (in the call's
 * order). A `FactoryError` carries the values the call did resolve (`partial`, ehcache3#225):
 * rejected bare, a batch whose loader failed lost its hits, which the caller then read again.
 * Other errors (a lease wait's `LockTimeoutError`, Redis's under `onBackendError: 'throw'`,
 * `ClosedError`) are thrown as they are.
 */
function failedMany(
  failures: ReadonlyMap<number, unknown>,
  userKeys: readonly string[],
  results: readonly unknown[],
): unknown {
  const first = failures.get(Math.min(...failures.keys()));
  if (!(first instanceof FactoryError)) return first;
  const partial = new Map<string, unknown>();
  userKeys.forEach((key, index) => {
    if (!failures.has(index)) partial.set(key, results[index]);
  });
  return first.withPartial(partial);
}

/**
 * Takes the leases of `indexes` (one SET NX each, sent together), runs `factoryMany` once for
 * the keys it got (or all of them when Redis is down or locks are off), and waits for the
 * others' holders key by key, as `getOrSet` does. Settles every settler.
 */
async function computeMany<T>(
  engine: CacheEngine,
  load: ManyLoad<T>,
  indexes: readonly number[],
): Promise<void> {
  const { fullKeys, userKeys, settlers, factoryMany, options, stale, staleSince, seen, held: l2Held } = load;
  const tier = engine.tier;
  let batch = [...indexes];
  const waits: Promise<void>[] = [];
  let token: string | undefined;
  // The keys whose L2 read failed (Redis down, or on a Cluster their master) take no lease: it
  // would only cost another deadline. Each key's own read decides, not the tier's `healthy`
  // after the batch: on a Cluster with one master stalled, its keys' failures (landing last, at
  // their deadline) made every key of the batch skip its lease, healthy masters' included, and
  // every instance ran the factory for them.
  const leased = tier && engine.options.lock.enabled ? indexes.filter((index) => l2Held.has(index)) : [];
  if (tier && leased.length > 0) {
    const leaseToken = randomUUID();
    token = leaseToken;
    batch = indexes.filter((index) => !l2Held.has(index));
    let leases: LeaseResult[];
    try {
      leases = await inBatches(leased, (index) =>
        tier.acquireLease(fullKeys[index]!, leaseToken, engine.options.lock.leaseMs),
      );
    } catch (error) {
      // `onBackendError: 'throw'` and a chunk failed: the call rejects, and frees the leases it
      // took (earlier chunks, and those of the failed one that may still land) rather than keep
      // every other instance waiting on them for `leaseMs`.
      await Promise.allSettled(leased.map((index) => tier.releaseLease(fullKeys[index]!, leaseToken)));
      throw error;
    }
    const held: number[] = [];
    leased.forEach((index, position) => {
      const lease = leases[position];
      if (lease === 'busy') {
        // Another instance computes it: wait for its value (or take over), one key at a time.
        const single: Factory<T> = async (context) =>
          alignMany(await factoryMany([userKeys[index]!], { signal: context.signal }), [
            userKeys[index]!,
          ])[0] as T;
        const settler = settlers.get(index)!;
        waits.push(
          computeOnce(engine, {
            fullKey: fullKeys[index]!,
            userKey: userKeys[index]!,
            factory: single,
            options,
            stale: stale.get(index),
            staleSince,
            l2Seen: seen.get(index),
            l2Held: { ...l2Held.get(index) },
          }).then(settler.resolve, settler.reject),
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
      const missing = new Set(await readManyFromL2(engine, fullKeys, held, found, new Map(), seen, l2Held));
      const computedElsewhere = held.filter((index) => !missing.has(index));
      for (const index of computedElsewhere) settlers.get(index)!.resolve(found[index] as T);
      await inBatches(computedElsewhere, (index) => tier.releaseLease(fullKeys[index]!, leaseToken));
      const elsewhere = new Set(computedElsewhere);
      batch = batch.filter((index) => !elsewhere.has(index));
    }
  }
  if (batch.length > 0)
    await runMany(engine, load, batch, token === undefined ? undefined : { token, leased });
  await Promise.all(waits);
}

/**
 * Runs `factoryMany` once for `batch`, writes the values (in chunks), releases the leases:
 * `leases.token`'s, of the keys in `leases.leased` (those whose lease was asked for; a key whose
 * L2 read failed asked for none, and its release would only wait on its failing master).
 */
async function runMany<T>(
  engine: CacheEngine,
  load: ManyLoad<T>,
  batch: readonly number[],
  leases: { token: string; leased: readonly number[] } | undefined,
): Promise<void> {
  const { fullKeys, userKeys, settlers, factoryMany, options, stale, staleSince, held } = load;
  const tier = engine.tier;
  const leaseToken = leases?.token;
  const asked = new Set(leases?.leased);
  // This batch's own reads: one failed (Redis down, or its master on a Cluster), the writes after
  // the run are not waited for (see `sendWrites`).
  const readFailed = batch.some((index) => !held.has(index));
  const started = performance.now();
  const keys = batch.map((index) => userKeys[index]!);
  const runs = batch.map((index) => {
    const run = engine.runs.start(fullKeys[index]!, engine.tagsOf(fullKeys[index]!, options.tags ?? []));
    // As `startFactory`: only a write compared against what L2 held ignores that write's late message.
    const read = held.get(index);
    if (read?.bytes) run.replaces = read.writeId;
    return run;
  });
  // As `runFactory`: the values the run replaces by compare-and-set are kept in Redis while it
  // lasts (their writes would find them expired), beside the factory. Once it settles, only the
  // batch in flight is awaited before the writes; the batches behind it are not sent.
  const replaced = batch.flatMap((index, position) => {
    const read = held.get(index);
    const bytes = read?.bytes;
    if (!bytes) return [];
    const tags = read.tags ?? stale.get(index)?.tags ?? [];
    return [{ fullKey: fullKeys[index]!, held: bytes, tags, run: runs[position]! }];
  });
  const kept =
    tier && replaced.length > 0
      ? new ReplacedValueKeeper(
          engine,
          tier,
          flightLimits(engine, options).hardTimeoutMs,
          replaced,
          inBatches,
        )
      : undefined;
  // A failed holder marks it in Redis first, for waiters the `rel` message misses (as runFactory).
  const failedMarkMs = Math.max(engine.options.graceBackoffMs, 2 * engine.options.lock.pollMs);
  const release = (all: readonly number[], holderFailed = false) => {
    const indexes = all.filter((index) => asked.has(index));
    return leaseToken && tier && indexes.length > 0
      ? inBatches(indexes, async (index) => {
          if (holderFailed) await tier.markFailedHolder(fullKeys[index]!, failedMarkMs);
          await tier.releaseLease(fullKeys[index]!, leaseToken);
        }).then(() => {
          engine.bus
            ?.publish(
              'rel',
              indexes.map((index) => fullKeys[index]!),
              { holderFailed },
            )
            .catch(() => {});
        })
      : Promise.resolve();
  };
  const abort = engine.runSignal();
  try {
    let values: (T | undefined)[];
    try {
      values = alignMany(await factoryMany(keys, { signal: abort.signal }), keys);
    } catch (error) {
      void kept?.stop();
      // As in `startFactory`: a run close() aborted is no failure of the source (no mark, no event).
      const aborted = abort.signal.aborted;
      if (!aborted) {
        engine.metrics.factoryRun('error');
        const failed = engine.listeners['factory-error'];
        if (failed)
          for (const index of batch)
            engine.events.emit('factory-error', failed, { key: fullKeys[index]!, error });
      }
      await release(batch, !aborted);
      const now = engine.clock.now();
      for (const [position, index] of batch.entries()) {
        const fallback = stale.get(index);
        if (fallback && now < fallback.staleUntil) {
          engine.servedStale(fullKeys[index]!, 'factory_error');
          // As in `runFactory`: a key changed during the run gets no back-off copy of the old value.
          if (!runs[position]!.superseded && !runs[position]!.suspect)
            backOff(engine, fullKeys[index]!, fallback, staleSince);
          settlers.get(index)!.resolve(fallback.value);
        } else {
          const reason = error instanceof ManyResultShapeError ? error.message : undefined;
          settlers.get(index)!.reject(new FactoryError(userKeys[index]!, { cause: error }, reason));
        }
      }
      return;
    }
    engine.metrics.factoryRun('ok');
    const computeMs = performance.now() - started;
    await kept?.stop();
    // As in `startFactory`: a run as long as its leases leaves each key whose lease another
    // instance took over (and runs again, having read the source later) to that newer run.
    if (leaseToken && tier && computeMs >= engine.options.lock.leaseMs) {
      const mine = batch.flatMap((index, position) =>
        asked.has(index) && !runs[position]!.superseded ? [position] : [],
      );
      const takenOver = await inBatches(mine, (position) =>
        tier.leaseTakenOver(fullKeys[batch[position]!]!, leaseToken),
      );
      const yielded = mine.filter((_, at) => takenOver[at]);
      for (const position of yielded) runs[position]!.superseded = true;
      if (yielded.length > 0) {
        engine.logger.warn(
          'a getOrSetMany factory run outlived lock.leaseMs and other instances took leases of its keys over: their values are not cached (set lock.leaseMs above the slowest factory run)',
          {
            keys: yielded.slice(0, 10).map((position) => userKeys[batch[position]!]!),
            count: yielded.length,
            runningMs: Math.round(computeMs),
            leaseMs: engine.options.lock.leaseMs,
          },
        );
      }
    }
    const inL2 = await checkL2(engine, load, batch, runs, values);
    // As in `runFactory`: a key L2 cannot vouch for is cached in L1 only until the resync.
    const awaitingResync = engine.bus?.awaitingResync === true;
    // L1 now, L2 in chunks: 20,000 values sent at once queued in Redis past their deadlines.
    const writes: PreparedWrite[] = [];
    const unwritten: number[] = [];
    /** Keys whose compare-and-set write lost to another instance's change. */
    const lost: number[] = [];
    batch.forEach((index, position) => {
      const value = values[position];
      const run = runs[position]!;
      const verdict = run.suspect ? inL2.get(position) : 'unchanged';
      const localOnly = verdict === 'unknown' && awaitingResync;
      if (value === undefined || run.superseded || (verdict !== 'unchanged' && !localOnly)) {
        unwritten.push(index);
        return;
      }
      try {
        if (localOnly) {
          // Nothing in L2 for the lease's waiters: released at once, as an unwritten key's.
          unwritten.push(index);
          writeLocal(engine, fullKeys[index]!, value, options, computeMs);
          return;
        }
        // Compare-and-set against what L2 held before the run (as `runFactory`'s write), refused
        // once another holder has the key's lease (a forced call took it over).
        const expected = held.get(index)?.bytes;
        const token = asked.has(index) ? leaseToken : undefined;
        const remote = prepareWrite(
          engine,
          fullKeys[index]!,
          value,
          options,
          computeMs,
          false,
          expected,
          token,
        );
        // A later chunk goes after anything this instance sent meanwhile: a delete of the key
        // since its L1 write must not be overwritten by the value it superseded.
        writes.push({
          send: async () => {
            if (run.superseded || (await remote())) return;
            // L2 changed since the run read it, by another instance whose bus message had not
            // arrived: served, not cached (see `runFactory`); the lease's waiters are woken.
            lost.push(index);
            engine.logger.debug('key changed while its factory ran; result not cached', {
              key: userKeys[index]!,
            });
          },
          skip: () => {
            if (!run.superseded) skipWrite(engine, fullKeys[index]!);
          },
          fullKey: fullKeys[index]!,
          tags: remote.tags,
        });
      } catch (error) {
        if (!(error instanceof SerializationError)) throw error;
        unwritten.push(index);
        engine.metrics.error('l2', 'encode');
        engine.logger.warn('factory value cannot be serialized; not cached', { key: userKeys[index]! });
      }
    });
    // Written keys' leases are released once their values are in L2 (see `#runFactory`).
    const skipped = new Set(unwritten);
    const written = batch.filter((index) => !skipped.has(index));
    // Neither waited for past a Redis failure (see `awaitInOrder`, `sendWrites`).
    const releaseWritten =
      leaseToken && tier
        ? async () => {
            await inBatches(
              written.filter((index) => asked.has(index)),
              (index) => tier.releaseLease(fullKeys[index]!, leaseToken),
            );
            // No `set` message comes for a write that lost: its waiters are woken to read L2.
            if (lost.length > 0)
              engine.bus
                ?.publish(
                  'rel',
                  lost.map((index) => fullKeys[index]!),
                )
                .catch(() => {});
          }
        : undefined;
    const finished = Promise.allSettled([
      awaitInOrder(engine, [() => release(unwritten)]),
      sendWrites(engine, writes, releaseWritten, true, readFailed),
    ]).then((settled) => {
      for (const outcome of settled) if (outcome.status === 'rejected') throw outcome.reason;
    });
    if (engine.options.writeMode === 'background') engine.track(finished);
    else await finished;
    batch.forEach((index, position) => {
      settlers.get(index)!.resolve(values[position] as T);
    });
  } catch (error) {
    for (const index of batch) settlers.get(index)!.reject(error);
  } finally {
    engine.endRun(abort);
    batch.forEach((index, position) => {
      engine.runs.end(fullKeys[index]!, runs[position]!);
    });
  }
}

/**
 * For the positions of `batch` whose run the bus connection closed during (see
 * `FactoryRun.suspect`), what L2 shows of a change since before the run: the rule of
 * `getOrSet`'s runs (`checkL2` there), per key, with one L2 read for all of them. Only
 * `unchanged` keys are cached as any run's; `unknown` ones (a read failed, before or now, or
 * L2 held nothing before and after) in L1 only while the bus awaits its resync.
 */
async function checkL2(
  engine: CacheEngine,
  load: Pick<ManyLoad<unknown>, 'fullKeys' | 'seen'>,
  batch: readonly number[],
  runs: readonly FactoryRun[],
  values: readonly unknown[],
): Promise<Map<number, 'unchanged' | 'changed' | 'unknown'>> {
  const verdicts = new Map<number, 'unchanged' | 'changed' | 'unknown'>();
  const suspects = batch
    .map((_, position) => position)
    .filter((position) => {
      const run = runs[position]!;
      return run.suspect && !run.superseded && values[position] !== undefined;
    });
  if (suspects.length === 0 || !engine.tier) return verdicts;
  let now: (number | null | undefined)[];
  try {
    now = await seenManyInL2(
      engine,
      suspects.map((position) => load.fullKeys[batch[position]!]!),
    );
  } catch {
    // `onBackendError: 'throw'`: L2 cannot be checked.
    now = [];
  }
  suspects.forEach((position, checked) => {
    verdicts.set(position, unchangedOrNot(load.seen.get(batch[position]!), now[checked]));
  });
  return verdicts;
}

import { randomUUID } from 'node:crypto';
import { tracingChannel, withDeadline } from '@noa/core';
import type { CacheEngine } from './cache-engine.js';
import type { Factory, GetOrSetOptions } from './cache-options.js';
import {
  type CacheEntry,
  isFresh,
  refreshTarget,
  shouldRefreshAhead,
  shouldRefreshEarly,
  slideEntry,
} from './entry.js';
import { FactoryError, FactoryTimeoutError, LockTimeoutError, SerializationError } from './errors.js';
import { FactoryRunContext } from './factory-context.js';
import type { FactoryRun } from './factory-runs.js';
import { type WatchedRun, withResolvers } from './hung-runs.js';
import { estimateSize } from './l1/estimate-size.js';
import { forcedLeasePrefix, type LeaseResult } from './l2/redis-tier.js';
import { type L2Held, type L2Read, readL2, readL2Current, replacedInL2 } from './read-path.js';
import { ReplacedValueKeeper } from './replaced-value-keeper.js';
import { awaitInOrder, writeEntry, writeLocal } from './writes.js';

/**
 * Read-through for one key past an L1 hit (`getOrSet`): the L2 read, the cross-instance lease
 * (or the wait for its holder), the factory run with its soft and hard timeouts and grace,
 * and the early (XFetch) refresh. The in-process single flight is `CacheEngine.getOrSet`'s.
 */

/** `noa:cache-manager:factory` — one message per factory run: `{ key, durationMs, ok }`. */
const factoryChannel = tracingChannel('cache-manager', 'factory');

/** One key's read-through past L1: what `computeOnce` and `runFactory` work on. */
export interface KeyLoad<T> {
  fullKey: string;
  userKey: string;
  factory: Factory<T>;
  options: GetOrSetOptions;
  /** The newest entry still in grace (L1's or L2's), served when the factory fails or is slow. */
  stale: CacheEntry<T> | undefined;
  /**
   * `fills.epoch` when {@link stale} was last known to be the key's value (as the read that
   * found it started): a change of the key heard since then (see `FillGuard`) makes a back-off
   * copy of it one of a replaced value (see {@link backOff}). Undefined: not checked.
   */
  staleSince?: number;
  /**
   * An early refresh, which nobody waits on: it has no timeouts (the cache's defaults
   * included), and `stale` is the value still fresh, so a failure serves nobody a stale value
   * (none is counted); it only backs off.
   */
  background?: boolean;
  /**
   * When the key's L2 value was last read before the run: its `createdAt`, null when L2 had
   * none, undefined when not read. A run that spans a bus reconnect caches its result only if
   * L2 still holds the same (see {@link FactoryRun.suspect}).
   */
  l2Seen?: number | null;
  /**
   * What L2 held when it was last read before the run: the bytes as stored (null: no value;
   * undefined: not read, or the read failed), and of a decoded value its tags and write id. The
   * run writes its result only if L2 still holds those bytes (compare-and-set, see
   * `RedisTier.setIfUnchanged`): a change another instance made meanwhile whose bus message has
   * not arrived yet is not overwritten. The tag sets are extended with the value while the run
   * lasts (see {@link ReplacedValueKeeper}); the bus message of that very write, arriving while
   * the run lasts (late), does not supersede it.
   */
  l2Held?: L2Held | undefined;
  /**
   * `forceFresh`: the clock time the call started. An L2 value is taken (a lease waiter's
   * poll, the double-check under a new lease) only when written since the call began, by the
   * run the call waited for or a later write: one whose write is not {@link replacedWriteId}.
   * Only when that is unknown, or the value has no id (the previous release's), is it judged
   * by the clocks: written after `forcedAt` (strictly: a value written in that same
   * millisecond may be the one the call was asked to replace), which assumes they agree.
   */
  forcedAt?: number;
  /**
   * `forceFresh`: the write whose value L2 held as the call began (read then), null when it
   * held none (or one without an id), undefined when that read failed. Ids are unique per
   * write, so a value with another id was written after that read: no clock is compared.
   */
  replacedWriteId?: number | null;
  /**
   * `forceFresh`: {@link runsStarted} as the call began. The call joins a run of this instance
   * only when it is forced too or started after that (a later `startedSeq`): a run begun before
   * the call may have read the source before the change the call was made for.
   */
  runsBefore?: number;
}

/**
 * Factory runs started in this process so far (all caches): orders a run against a forced
 * call's start exactly, where two `Date.now()` readings in one millisecond could not.
 */
let runsStarted = 0;

/** Whether an L2 entry read during `load` may be served: fresh, and for a forced load written after its start. */
function servable(
  load: Pick<KeyLoad<unknown>, 'forcedAt' | 'replacedWriteId'>,
  entry: CacheEntry,
  now: number,
): boolean {
  if (!isFresh(entry, now)) return false;
  if (load.forcedAt === undefined) return true;
  if (entry.writeId !== undefined && load.replacedWriteId !== undefined)
    return entry.writeId !== load.replacedWriteId;
  return entry.createdAt > load.forcedAt;
}

/** An L1 miss or stale entry: L2, then the factory once across instances. */
export async function loadThrough<T>(
  engine: CacheEngine,
  fullKey: string,
  userKey: string,
  factory: Factory<T>,
  options: GetOrSetOptions,
  staleL1: CacheEntry<T> | undefined,
  /** The load's flight, told the value in grace found for its joiners (see {@link Flight.stale}). */
  flight?: Flight,
): Promise<T> {
  let stale = staleL1;
  // L1's copy was current as the call looked it up, in this same turn; L2's read starts now.
  const staleSince = engine.fills.epoch;
  let l2Seen: number | null | undefined;
  const held: L2Held = {};
  if (options.forceFresh === true) {
    // Nothing served from the cache: the factory runs (or a run in flight is joined). L2 is
    // read to name the write it holds now, the one the call replaces (a value of another write
    // is a later one), and to keep its bytes: the run's write replaces only them
    // (compare-and-set, see `KeyLoad.l2Held`), so a change another instance makes during the
    // run stands. `l2Seen` stays unknown, so a run spanning a bus reconnect is not cached over
    // L2 (see `KeyLoad.l2Seen`). The value replaced backs the call as in grace: L1's, or L2's
    // when newer or L1 has none (another instance wrote it, it left L1, or there is no L1).
    const forcedAt = engine.clock.now();
    const runsBefore = runsStarted;
    let replacedWriteId: number | null | undefined = null;
    if (engine.tier) {
      const replaced = await replacedInL2(engine, fullKey, held);
      replacedWriteId = replaced.writeId;
      const remote = replaced.entry as CacheEntry<T> | undefined;
      if (remote && (!stale || remote.createdAt > stale.createdAt)) stale = remote;
    }
    const inGrace = stale && engine.clock.now() < stale.staleUntil ? stale : undefined;
    if (flight) flight.stale = inGrace;
    return computeOnce(engine, {
      fullKey,
      userKey,
      factory,
      options,
      stale: inGrace,
      staleSince,
      forcedAt,
      replacedWriteId,
      runsBefore,
      l2Held: { ...held },
    });
  }
  if (engine.tier) {
    const remote = await readL2Current(engine, fullKey, held);
    l2Seen = seenInL2(remote, held);
    if (remote) {
      const entry = remote.entry as CacheEntry<T>;
      const now = engine.clock.now();
      if (isFresh(entry, now)) {
        if (entry.slidingMs) slideEntry(entry, now);
        engine.metrics.request('l2', 'hit');
        engine.fill(fullKey, entry, remote.bytes, remote.since);
        if (engine.listeners.hit) engine.emitHit(fullKey, 'l2');
        // With L1 the next hit, an L1 one, decides; an L2-only cache has only L2 hits.
        if (!engine.l1Enabled) refreshIfDue(engine, fullKey, userKey, factory, options, entry, now, true);
        return entry.value;
      }
      engine.metrics.request('l2', 'stale');
      if (now < entry.staleUntil && (!stale || entry.createdAt > stale.createdAt)) stale = entry;
    } else {
      engine.metrics.request('l2', 'miss');
    }
  }
  if (engine.listeners.miss) engine.emitMiss(fullKey);
  if (flight) flight.stale = stale;
  return computeOnce(engine, {
    fullKey,
    userKey,
    factory,
    options,
    stale,
    staleSince,
    l2Seen,
    l2Held: { ...held },
  });
}

/** The soft and hard timeouts a `getOrSet` call waits with: its own, else the cache's. */
export interface FlightLimits {
  softTimeoutMs: number | undefined;
  hardTimeoutMs: number | undefined;
}

export function flightLimits(engine: CacheEngine, options: GetOrSetOptions): FlightLimits {
  return {
    softTimeoutMs: options.softTimeoutMs ?? engine.options.softTimeoutMs,
    hardTimeoutMs: options.hardTimeoutMs ?? engine.options.hardTimeoutMs,
  };
}

/** A load in progress (in-process single flight) and the timeouts it waits with (none: `getOrSetMany`'s). */
export interface Flight {
  promise: Promise<unknown>;
  limits?: FlightLimits;
  /**
   * `getOrSetMany`'s: `Date.now()` at its start. It has no timeouts, so it lasts as long as its
   * factory: past `lock.leaseMs` it is no longer joined (see {@link outlivedFlight}).
   */
  startedAt?: number;
  /** Set once {@link outlivedFlight} has superseded it (one warning per flight). */
  outlived?: boolean;
  /** A `forceFresh` load: it runs the factory (or joins a run), never serves the cached value. */
  forced?: boolean;
  /**
   * The value in grace the load found (L1's, or L2's once read): a caller joining it with other
   * timeouts than its own serves it past its own soft timeout (see {@link joinFlight}), as the
   * load's first caller would. Without it, a value only L2 held (another instance's write, or
   * no L1) backed the first caller and not the joiner, which got its hard timeout's error.
   */
  stale?: CacheEntry;
  /** `fills.epoch` as the load began: a change of the key heard since ends its joining (see {@link joinableFlight}). */
  since?: number;
}

/**
 * Whether a caller may join `flight`, the load of its key in flight on this instance: not once
 * a change of the key (a write, delete, expire, tag delete or expire, clear) has reached this
 * instance since the load began, but the write of the value in grace the load found. The change
 * supersedes the load's run (README "Hard timeout": joined until a write, delete or expire
 * supersedes it), and the load's outcome may be the value it replaced, served past the first
 * caller's timeout or failure: a caller that asked after a delete got the deleted value. Such a
 * caller starts a load of its own, as after {@link outlivedFlight}.
 */
export function joinableFlight(
  engine: CacheEngine,
  flight: Flight,
  fullKey: string,
  userKey: string,
): boolean {
  if (
    flight.since !== undefined &&
    !engine.fills.mayFill(fullKey, flight.stale?.tags ?? [], flight.since, flight.stale?.writeId)
  )
    return false;
  return !outlivedFlight(engine, flight, fullKey, userKey);
}

/**
 * Whether a caller must not join `flight`, a `getOrSetMany` load older than `lock.leaseMs`:
 * as with a run of `getOrSet` (see {@link outlivedLease}), the caller starts another, and the
 * old one is superseded, its late values going to its own caller only. Joined whatever its
 * age, a hung batch factory held its keys for good: every later caller timed out on it.
 */
export function outlivedFlight(
  engine: CacheEngine,
  flight: Flight,
  fullKey: string,
  userKey: string,
): boolean {
  if (flight.startedAt === undefined) return false;
  const runningMs = Date.now() - flight.startedAt;
  if (runningMs < engine.options.lock.leaseMs) return false;
  // Any run of the key in progress is the old flight's: the caller's starts after this.
  engine.runs.supersedeKey(fullKey);
  if (!flight.outlived) {
    flight.outlived = true;
    engine.logger.warn(
      'a getOrSetMany factory run outlived lock.leaseMs and is no longer joined: the factory runs again (set lock.leaseMs above the slowest factory run)',
      { key: userKey, runningMs, leaseMs: engine.options.lock.leaseMs },
    );
  }
  return true;
}

/** Whether a caller with `limits` may share a flight that waits with `flight`'s (none: no timeouts). */
export function sameLimits(flight: FlightLimits | undefined, limits: FlightLimits): boolean {
  return flight?.softTimeoutMs === limits.softTimeoutMs && flight?.hardTimeoutMs === limits.hardTimeoutMs;
}

/**
 * A `getOrSet` call that finds a load of its key in flight with other timeouts than its own:
 * it waits for that load with its own (sharing it, a 20 ms caller waited for another's 60 s,
 * and a patient one got a hurried one's timeout error or stale value). When the flight ends
 * before the factory run it started (its first caller stopped waiting), the call joins the
 * run with what its timeouts leave, as a later caller would.
 */
export async function joinFlight<T>(
  engine: CacheEngine,
  load: KeyLoad<T>,
  flight: Promise<T>,
  limits: FlightLimits = flightLimits(engine, load.options),
  /** `getOrSetMany`'s: no timeouts, no grace, the run's own outcome. */
  untimed = false,
): Promise<T> {
  const startedAt = Date.now();
  const { softTimeoutMs, hardTimeoutMs } = limits;
  const stale = load.stale && engine.clock.now() < load.stale.staleUntil ? load.stale : undefined;
  const limit = stale ? (softTimeoutMs ?? hardTimeoutMs) : hardTimeoutMs;
  // `softTimeoutMs: 0`: the value in grace at once (see `awaitFactory`).
  let timedOut = limit === 0;
  let outcome: { value: T } | { error: unknown };
  try {
    if (timedOut) throw new FactoryTimeoutError(load.userKey, 0);
    const value =
      limit === undefined
        ? await flight
        : await withDeadline(flight, limit, 'cache factory', () => {
            timedOut = true;
          });
    outcome = { value };
  } catch (error) {
    if (!timedOut) outcome = { error };
    else if (stale && engine.clock.now() < stale.staleUntil) {
      engine.servedStale(load.fullKey, softTimeoutMs !== undefined ? 'soft_timeout' : 'hard_timeout');
      return stale.value;
    } else if (stale && (hardTimeoutMs === undefined || hardTimeoutMs > limit!)) {
      // Its grace ended during the wait: on as a call with nothing stale, to its hard timeout.
      const left = hardTimeoutMs === undefined ? undefined : hardTimeoutMs - limit!;
      return joinFlight(engine, { ...load, stale: undefined }, flight, {
        softTimeoutMs,
        hardTimeoutMs: left,
      });
    } else throw new FactoryTimeoutError(load.userKey, limit!);
  }
  const running = engine.running.get(load.fullKey) as RunningFactory<T> | undefined;
  const fresh = engine.getLocal(load.fullKey);
  if (!fresh && joinable(engine, running))
    return untimed
      ? awaitUntimed(running)
      : awaitFactory(engine, { ...load, stale, options: { ...load.options, ...limits } }, running, startedAt);
  if ('error' in outcome) throw outcome.error;
  return outcome.value;
}

/** A `getOrSetMany` caller's wait for a run it joined: no timeouts, but counted as a waiter. */
async function awaitUntimed<T>(running: RunningFactory<T>): Promise<T> {
  running.waiters++;
  try {
    return await running.work;
  } finally {
    running.waiters--;
  }
}

/** Runs the factory once across instances: takes the key's lease or waits for its holder. */
export async function computeOnce<T>(engine: CacheEngine, load: KeyLoad<T>): Promise<T> {
  const { fullKey, userKey, options } = load;
  // A run its callers stopped waiting for (a timeout), or an early refresh: join it, with this
  // call's own timeouts and grace, rather than call the slow source once more. It holds the
  // lease if it took one. One a change superseded would return what the change replaced. A
  // suspect one is joined while the bus awaits its resync: a new run could learn of no lost
  // change either, and not joining it, every call past a timeout started one more run of the
  // slow source during a Redis outage (ioredis's reconnect attempts close the bus again and
  // again, so every run goes suspect).
  const running = engine.running.get(fullKey) as RunningFactory<T> | undefined;
  if (joinable(engine, running)) {
    if (!olderThanForced(load, running)) return awaitFactory(engine, load, running);
    // A forced call does not settle for a run begun before it (symfony#62328): its own run
    // supersedes that one, whose value goes to its callers but is not cached over the newer.
    // A lease that run holds is taken over below, as another instance's would be.
    running.run.superseded = true;
  } else if (running) outlivedLease(engine, running, userKey);
  let stale = load.stale;
  let staleSince = load.staleSince;
  let l2Seen = load.l2Seen;
  const held: L2Held = { ...load.l2Held };
  const tier = engine.tier;
  // After our own L2 read of the key failed (Redis down, or on a Cluster the key's master) a
  // lease would only cost another deadline: in-process single flight instead. Our read's
  // outcome, not the tier's `healthy` read after it, which says what the last call to settle
  // did: a miss answered in the same round trip as another call's failure (a write Redis
  // refused) skipped the lease, and the factory ran beside the holder's
  // (read-outcome-race.test.ts). With the breaker open the lease call fails at once, unsent.
  if (!tier || !engine.options.lock.enabled || held.bytes === undefined) return runFactory(engine, load);
  // A forced call takes the lease over from a plain holder (see `RedisTier.takeForcedLease`),
  // on any instance: that run may have read the source before the change, and its write is now
  // refused. It waits only for a forced holder, whose value it takes.
  const forced = load.forcedAt !== undefined;
  const token = forced ? forcedLeasePrefix + randomUUID() : randomUUID();
  let holderReplaced = false;
  const leaseMs = engine.options.lock.leaseMs;
  const takeLease = async (): Promise<LeaseResult> => {
    if (!forced) return tier.acquireLease(fullKey, token, leaseMs);
    const taken = await tier.takeForcedLease(fullKey, token, leaseMs);
    if (taken !== 'replaced') return taken;
    holderReplaced = true;
    return 'acquired';
  };
  let lease = await takeLease();
  if (lease === 'busy') {
    const started = Date.now();
    const lockTimeoutMs = options.lockTimeoutMs ?? engine.options.lock.timeoutMs;
    const { softTimeoutMs, hardTimeoutMs } = flightLimits(engine, options);
    // The caller's bound on the factory holds for the wait too, whoever runs it (as in runFactory).
    const boundOfWait = (withStale: boolean) => {
      const limitMs = withStale ? (softTimeoutMs ?? hardTimeoutMs) : hardTimeoutMs;
      const limitAt = limitMs === undefined ? Number.POSITIVE_INFINITY : started + limitMs;
      const byLimit = limitAt <= started + lockTimeoutMs;
      return { limitMs, byLimit, giveUpAt: byLimit ? limitAt : started + lockTimeoutMs };
    };
    let { limitMs, byLimit, giveUpAt } = boundOfWait(stale !== undefined);
    const wait = engine.wakeups.watch(fullKey);
    // Watched like a factory run: a write, delete, expire, tag delete or clear of the key during
    // the wait (here or through the bus) marks it, and our value in grace may then be gone.
    const changes = stale ? engine.runs.start(fullKey, stale.tags, 'wait') : undefined;
    // The holder's factory failed and we have a value in grace: serve it, as our own failed
    // factory would, rather than try the failing source again from every waiting instance.
    const staleAfterFailedHolder = () =>
      wait.holderFailed && stale !== undefined && engine.clock.now() < stale.staleUntil ? stale : undefined;
    try {
      while (lease === 'busy') {
        let remaining = giveUpAt - Date.now();
        if (remaining <= 0 && stale && engine.clock.now() >= stale.staleUntil) {
          // Its grace ended during the wait: nothing to serve, so the wait goes on as one with
          // nothing stale (to the hard timeout or lock.timeoutMs, from the start of the call).
          stale = undefined;
          ({ limitMs, byLimit, giveUpAt } = boundOfWait(false));
          remaining = giveUpAt - Date.now();
        }
        if (remaining <= 0) {
          if (stale) {
            engine.metrics.lockWait('stale');
            const reason = !byLimit
              ? 'lock_timeout'
              : softTimeoutMs !== undefined
                ? 'soft_timeout'
                : 'hard_timeout';
            engine.servedStale(fullKey, reason);
            return stale.value;
          }
          engine.metrics.lockWait('timeout');
          if (byLimit) throw new FactoryTimeoutError(userKey, limitMs!);
          throw new LockTimeoutError(userKey, lockTimeoutMs);
        }
        await wait.sleep(Math.min(engine.options.lock.pollMs, remaining));
        const remote = await readL2(engine, fullKey, held);
        l2Seen = seenInL2(remote, held);
        const now = engine.clock.now();
        if (remote && servable(load, remote.entry, now)) {
          engine.metrics.lockWait('value');
          engine.fill(fullKey, remote.entry, remote.bytes, remote.since);
          return remote.entry.value as T;
        }
        if (stale) {
          const inGrace = remote !== undefined && now < remote.entry.staleUntil ? remote.entry : undefined;
          // After a change, L2 holds what it left: a value deleted meanwhile must not come back
          // through a failed holder or a timeout. Without one, only a newer value replaces ours
          // (L2's copy of a value slid in L1 may have expired before it).
          if (changes?.superseded || changes?.suspect || (inGrace && inGrace.createdAt > stale.createdAt)) {
            stale = inGrace as CacheEntry<T> | undefined;
            staleSince = remote?.since;
          }
        }
        const fallback = staleAfterFailedHolder();
        if (fallback) return serveStaleAfterFailedHolder(engine, userKey, fullKey, fallback, staleSince);
        // The poll failed (`held.bytes` unknown: Redis down or past its deadline): as after a
        // failed read before the lease, a lease attempt would only cost another deadline (a whole
        // one on a Redis that hangs, on top of the poll's), so the wait ends in in-process single
        // flight, with what it left of the call's timeouts.
        lease = held.bytes === undefined ? 'unavailable' : await takeLease();
      }
      // The failure may have been reported while we took the lease it freed, or not have
      // reached us at all (our bus down): the holder also marks it in Redis for a while.
      let fallback = staleAfterFailedHolder();
      if (
        !fallback &&
        lease === 'acquired' &&
        stale !== undefined &&
        engine.clock.now() < stale.staleUntil &&
        (await tier.holderFailed(fullKey))
      )
        fallback = stale;
      if (fallback) {
        if (lease === 'acquired') {
          // The failure mark outlives the holder that set it: a later holder may have stored a
          // fresh value between our last poll and the lease it freed. That value, not ours.
          const remote = await readL2(engine, fullKey);
          await tier.releaseLease(fullKey, token);
          if (remote && servable(load, remote.entry, engine.clock.now())) {
            engine.metrics.lockWait('value');
            engine.fill(fullKey, remote.entry, remote.bytes, remote.since);
            return remote.entry.value as T;
          }
          engine.bus?.publish('rel', [fullKey], { holderFailed: true }).catch(() => {});
        }
        return serveStaleAfterFailedHolder(engine, userKey, fullKey, fallback, staleSince);
      }
    } finally {
      wait.end();
      if (changes) engine.runs.end(fullKey, changes);
    }
    // The timeouts bound the whole call: the factory gets what the wait left of them.
    const waitedMs = Date.now() - started;
    // A `softTimeoutMs` of 0 stays 0: the value in grace at once, not after 1 ms.
    const left = (ms: number | undefined) => (ms === undefined || ms === 0 ? ms : Math.max(1, ms - waitedMs));
    const bounded = { ...options, softTimeoutMs: left(softTimeoutMs), hardTimeoutMs: left(hardTimeoutMs) };
    // 'unavailable': Redis failed while we waited; only in-process single flight is left.
    const l2Held = { ...held };
    if (lease === 'unavailable')
      return runFactory(engine, { ...load, stale, staleSince, l2Seen, l2Held, options: bounded });
    engine.metrics.lockWait('acquired');
    return takeOver(
      engine,
      { ...load, stale, staleSince, l2Seen, l2Held, options: bounded },
      token,
      true,
      holderReplaced,
    );
  }
  // 'unavailable': Redis is down, so only in-process single-flight protects the source.
  if (lease === 'unavailable') return runFactory(engine, load);
  return takeOver(engine, load, token, false, holderReplaced);
}

/** A waiter whose lease holder failed serves its value in grace, and backs off like a holder. */
function serveStaleAfterFailedHolder<T>(
  engine: CacheEngine,
  userKey: string,
  fullKey: string,
  stale: CacheEntry<T>,
  staleSince: number | undefined,
): T {
  engine.metrics.lockWait('stale');
  engine.servedStale(fullKey, 'factory_error');
  engine.logger.warn('lease holder failed; serving stale value', { key: userKey });
  backOff(engine, fullKey, stale, staleSince);
  return stale.value;
}

/**
 * Runs the factory under a lease just acquired, unless L2 has the value by now, or (with a
 * value in grace, `failureChecked` false) the lease was freed by a holder whose factory failed
 * within its back-off (its failure mark): then the value in grace is served and backed off, as
 * by a waiter of that holder. Without the check, every instance whose caller came after the
 * failure (every call with `softTimeoutMs: 0` past its back-off) ran the failing source again.
 * `holderReplaced`: a forced call took the lease from a plain run (see `RedisTier.takeForcedLease`);
 * L2 is read only for the compare-and-set, never served: a value there now may be that older
 * run's, written before it lost the lease.
 */
async function takeOver<T>(
  engine: CacheEngine,
  load: KeyLoad<T>,
  token: string,
  failureChecked = false,
  holderReplaced = false,
): Promise<T> {
  const { fullKey, stale } = load;
  const tier = engine.tier!;
  // Double-check: between our L2 miss and the lease, another instance may have computed
  // the value and released its lease.
  const held: L2Held = {};
  const remote = await readL2(engine, fullKey, held);
  if (!holderReplaced && remote && servable(load, remote.entry, engine.clock.now())) {
    await tier.releaseLease(fullKey, token);
    engine.fill(fullKey, remote.entry, remote.bytes, remote.since);
    return remote.entry.value as T;
  }
  if (
    !failureChecked &&
    stale !== undefined &&
    load.forcedAt === undefined &&
    engine.clock.now() < stale.staleUntil &&
    (await tier.holderFailed(fullKey))
  ) {
    await tier.releaseLease(fullKey, token);
    engine.bus?.publish('rel', [fullKey], { holderFailed: true }).catch(() => {});
    engine.servedStale(fullKey, 'factory_error');
    engine.logger.warn('the last lease holder failed; serving stale value', { key: load.userKey });
    backOff(engine, fullKey, stale, load.staleSince);
    return stale.value;
  }
  return runFactory(
    engine,
    {
      ...load,
      l2Seen: seenInL2(remote, held),
      l2Held: { ...held },
    },
    token,
  );
}

/** A factory run in progress: its work (the run, its write and lease release), watch and context. */
export interface RunningFactory<T> extends WatchedRun {
  work: Promise<T>;
  run: FactoryRun;
  context: FactoryRunContext<T>;
  /** Its `ctx.signal`'s controller: aborted by `close()`, or as the run is given up ({@link abandonRun}). */
  abort: AbortController;
  /** Settles {@link work} with the give-up's error, whether or not the factory heeds its signal. */
  giveUp: (reason: FactoryTimeoutError) => void;
  /** Set once given up ({@link abandonRun}): the error its waiters get (its signal's reason). */
  abandoned?: FactoryTimeoutError;
  /** Kept by `engine.track` (close waits for it) since a caller stopped waiting for it. */
  tracked: boolean;
  /** `Date.now()` at its start: joined for `lock.leaseMs` at most (see {@link joinable}). */
  startedAt: number;
  /** {@link runsStarted} once it started: a forced call joins it only when started after the call. */
  startedSeq: number;
  /** A `forceFresh` run: joined by any later forced call (a burst of them shares one run). */
  forced: boolean;
  /** The first value in grace served past a timeout: a late failure backs it off (see {@link lateFailure}). */
  lateStale?: { fullKey: string; staleSince: number | undefined; stale: CacheEntry<T> };
}

/**
 * Whether a later caller joins `running` rather than start a run of its own: not once a change
 * superseded it, nor once suspect after the bus's resync (see `computeOnce`), nor past
 * `lock.leaseMs` from its start. Past the lease another instance may run the key again; joined
 * without that bound, a factory that never settled held its key on this instance for good,
 * every later caller timing out on it.
 */
function joinable<T>(
  engine: CacheEngine,
  running: RunningFactory<T> | undefined,
): running is RunningFactory<T> {
  return (
    running !== undefined &&
    !running.run.superseded &&
    (!running.run.suspect || engine.bus?.awaitingResync === true) &&
    Date.now() - running.startedAt < engine.options.lock.leaseMs
  );
}

/**
 * Whether `running`, joinable, began before the forced call `load` (a plain run, an early
 * refresh): it may have read the source before the change the call was made for. A forced run
 * is joined whenever it began: it was itself asked for after a change.
 */
function olderThanForced(
  load: Pick<KeyLoad<unknown>, 'runsBefore'>,
  running: RunningFactory<unknown>,
): boolean {
  return load.runsBefore !== undefined && !running.forced && running.startedSeq <= load.runsBefore;
}

/**
 * A run not joined only because it outlived `lock.leaseMs` (see {@link joinable}): the caller
 * starts another, as another instance may once the lease has expired. The late run is
 * superseded: it read its source before the new one, so its value, if it ever comes, goes to
 * its own callers only; cached, it overwrote the newer one's. Logged once per run, since
 * only the user knows a slow factory from a hung one: a slow one needs a longer lease.
 */
function outlivedLease(engine: CacheEngine, running: RunningFactory<unknown>, userKey: string): void {
  if (running.run.superseded || running.run.suspect) return;
  running.run.superseded = true;
  engine.logger.warn(
    'a factory run outlived lock.leaseMs and is no longer joined: the factory runs again (set lock.leaseMs above the slowest factory run)',
    { key: userKey, runningMs: Date.now() - running.startedAt, leaseMs: engine.options.lock.leaseMs },
  );
}

/** Runs the factory with soft/hard timeouts and grace; writes the result through both tiers. */
export function runFactory<T>(engine: CacheEngine, load: KeyLoad<T>, leaseToken?: string): Promise<T> {
  return awaitFactory(engine, load, startFactory(engine, load, leaseToken));
}

/**
 * Keeps the value a run will replace by compare-and-set ({@link KeyLoad.l2Held}) in Redis while
 * the run lasts (see {@link ReplacedValueKeeper}); undefined when there is none to keep.
 */
function keepReplaced(
  engine: CacheEngine,
  load: Pick<KeyLoad<unknown>, 'fullKey' | 'options' | 'stale' | 'l2Held'>,
  run: FactoryRun,
): ReplacedValueKeeper | undefined {
  const held = load.l2Held?.bytes;
  if (!engine.tier || !held) return undefined;
  const tags = load.l2Held?.tags ?? load.stale?.tags ?? [];
  return new ReplacedValueKeeper(engine, engine.tier, flightLimits(engine, load.options).hardTimeoutMs, [
    { fullKey: load.fullKey, held, tags, run },
  ]);
}

/**
 * Starts the factory: its result is written through both tiers (unless superseded or skipped)
 * and the lease released, whether anyone still waits for it or not. Registered in
 * `engine.running` until it settles, for later callers to join.
 */
function startFactory<T>(engine: CacheEngine, load: KeyLoad<T>, leaseToken?: string): RunningFactory<T> {
  const { fullKey, userKey, factory, options, stale } = load;
  const started = performance.now();
  const tier = engine.tier;
  const run = engine.runs.start(fullKey, engine.tagsOf(fullKey, options.tags ?? []));
  // A tag delete or expire supersedes a run carrying the tag (see `FactoryRuns.supersedeTags`),
  // but a tag the factory sets through its context is the run's only from then on: one
  // invalidated between the start and then is found by the epoch (see below).
  const startedEpoch = engine.fills.epoch;
  // Only a write compared against what L2 held (compare-and-set) may ignore its late message.
  if (load.l2Held?.bytes) run.replaces = load.l2Held.writeId;
  const abort = engine.runSignal();
  const context = new FactoryRunContext<T>(
    userKey,
    stale && engine.out(stale.value as T),
    run,
    abort.signal,
    (tags) => engine.tagsOf(fullKey, tags),
  );
  // Sent as the run starts, beside the factory (no caller waits for it), renewed while the run
  // lasts, settled before the write.
  const kept = keepReplaced(engine, load, run);
  // Rejected only by a give-up: the run then settles even if its factory never does.
  const givenUp = withResolvers<never>();
  const running = {
    run,
    context,
    abort,
    giveUp: givenUp.reject,
    tracked: false,
    startedAt: Date.now(),
    startedSeq: ++runsStarted,
    forced: load.forcedAt !== undefined,
    trustedMs: Math.max(engine.options.lock.leaseMs, flightLimits(engine, options).hardTimeoutMs ?? 0),
    replaced: false,
    waiters: 0,
  } as RunningFactory<T>;
  // Before the factory is called: one that throws at once is deleted as it settles, in this turn.
  engine.hungRuns.add(running as RunningFactory<unknown>);
  const work = (async () => {
    let value: T;
    try {
      value = await Promise.race([factory(context), givenUp.promise]);
    } catch (error) {
      engine.hungRuns.delete(running);
      void kept?.stop();
      // close() gave up on the run and told it to stop, or the run was given up (abandonRun,
      // logged there): no failure of the source, so no failure mark (other instances' waiters
      // would serve their stale values and back off) and no event; the lease is freed at once
      // for another instance to take.
      const aborted = abort.signal.aborted;
      if (aborted) {
        if (!running.abandoned) engine.logger.debug('factory run aborted by close()', { key: userKey });
      } else {
        engine.metrics.factoryRun('error');
        const failed = engine.listeners['factory-error'];
        if (failed) engine.events.emit('factory-error', failed, { key: fullKey, error });
        if (factoryChannel.hasSubscribers) {
          factoryChannel.publish({ key: userKey, durationMs: performance.now() - started, ok: false, error });
        }
      }
      if (leaseToken && tier) {
        // Free the lease first, then wake waiters: those with a value in grace serve it, one
        // of the others takes the lease and retries at once. The mark tells the waiters the
        // message misses; it lasts the back-off a failure served stale gets here.
        const release = async () => {
          await tier.releaseLease(fullKey, leaseToken);
          engine.bus?.publish('rel', [fullKey], { holderFailed: !aborted }).catch(() => {});
        };
        const mark = () =>
          tier.markFailedHolder(
            fullKey,
            Math.max(engine.options.graceBackoffMs, 2 * engine.options.lock.pollMs),
          );
        await awaitInOrder(engine, aborted ? [release] : [mark, release], true);
      }
      throw error;
    }
    engine.hungRuns.delete(running);
    // The factory may have read its source before that invalidation, as for any change
    // during the run: its result goes to its callers, not into the cache.
    if (context.options?.tags !== undefined && engine.fills.tagsChangedSince(run.tags, startedEpoch))
      run.superseded = true;
    engine.metrics.factoryRun('ok');
    if (factoryChannel.hasSubscribers) {
      factoryChannel.publish({ key: userKey, durationMs: performance.now() - started, ok: true });
    }
    await kept?.stop();
    // Only a run as long as its lease asks (no await on the common path).
    if (
      !run.superseded &&
      leaseToken &&
      tier &&
      performance.now() - started >= engine.options.lock.leaseMs &&
      (await leaseTakenOver(engine, tier, load, leaseToken, started))
    )
      run.superseded = true;
    let stored: Promise<void> | undefined;
    let notCached = false;
    // L2 unreadable in a full outage: with the resync still to come, which drops L1, the value
    // is cached in L1 only. Not cached at all, every call ran the factory during the outage.
    let localOnly = false;
    if (run.suspect && !run.superseded) {
      const inL2 = await checkL2(engine, load);
      if (inL2 === 'unknown' && engine.bus?.awaitingResync) localOnly = true;
      else if (inL2 !== 'unchanged') run.superseded = true;
    }
    if (run.superseded) {
      engine.logger.debug('key changed while its factory ran; result not cached', { key: userKey });
    } else if (value !== undefined && !context.skipped) {
      const chosen = context.options;
      try {
        const chosenOptions = chosen ? { ...options, ...chosen } : options;
        const computeMs = performance.now() - started;
        // L1 only: nothing in L2 for the lease's waiters, who are woken at once (see below).
        if (localOnly) writeLocal(engine, fullKey, value, chosenOptions, computeMs);
        else
          stored = writeEntry(
            engine,
            fullKey,
            value,
            chosenOptions,
            computeMs,
            load.l2Held?.bytes,
            leaseToken,
          ).then((written) => {
            if (written) return;
            // L2 changed since the run read it, by another instance whose bus message had not
            // arrived: as if it had (see `superseded` above), served but not cached.
            notCached = true;
            engine.logger.debug('key changed while its factory ran; result not cached', { key: userKey });
          });
      } catch (error) {
        // The value is good, it just cannot be stored: serve it uncached rather than fail.
        if (!(error instanceof SerializationError)) throw error;
        engine.metrics.error('l2', 'encode');
        engine.logger.warn('factory value cannot be serialized; not cached', { key: userKey });
      }
    }
    // The lease is released only once the value is in L2: whoever takes the lease next
    // re-reads L2 and finds it, instead of computing it again. With nothing stored, waiters
    // are woken at once (no `set` message will come) so one of them computes. Neither is
    // waited for past a Redis failure (see `awaitInOrder`).
    const steps: (() => Promise<unknown>)[] = [];
    if (stored) steps.push(() => stored);
    if (leaseToken && tier) {
      steps.push(async () => {
        await tier.releaseLease(fullKey, leaseToken);
        if (stored === undefined || notCached) engine.bus?.publish('rel', [fullKey]).catch(() => {});
      });
    }
    // Our own read of the key failed (its master on a Cluster, maybe): not waited for either.
    await awaitInOrder(engine, steps, false, tier !== undefined && load.l2Held?.bytes === undefined);
    return value;
  })().finally(() => {
    engine.runs.end(fullKey, run);
    engine.endRun(abort);
  });
  running.work = work;
  // Not joined (it outlived its lease, a change superseded it, or a forced call would not
  // settle for it): this run replaces it, so past its trusted time it is given up.
  const previous = engine.running.get(fullKey);
  if (previous) previous.replaced = true;
  engine.running.set(fullKey, running);
  const settled = () => {
    if (engine.running.get(fullKey) === running) engine.running.delete(fullKey);
  };
  work.then(settled, settled);
  return running;
}

/**
 * Whether a run that outlived its lease (`lock.leaseMs` since it started, so the lease ended
 * earlier still) finds the lease held by another instance, which took it over and runs the
 * factory again, having read the source later: the newer run's value is the one to cache, as
 * in process (see {@link outlivedLease}). Otherwise the late run's write landed first, the
 * newer run's compare-and-set then lost, and every instance served the older value until its
 * TTL. Asked only of runs that long (one GET; the caller checks the age); a lease that ended with nobody taking it over
 * leaves the write to the compare-and-set. Between the GET and the write another instance may
 * still take the lease (one round trip, as against the whole overlap before).
 */
async function leaseTakenOver(
  engine: CacheEngine,
  tier: NonNullable<CacheEngine['tier']>,
  { fullKey, userKey }: Pick<KeyLoad<unknown>, 'fullKey' | 'userKey'>,
  leaseToken: string,
  started: number,
): Promise<boolean> {
  if (!(await tier.leaseTakenOver(fullKey, leaseToken))) return false;
  const runningMs = performance.now() - started;
  engine.logger.warn(
    'a factory run outlived lock.leaseMs and another instance took its lease over: its value is not cached (set lock.leaseMs above the slowest factory run)',
    { key: userKey, runningMs: Math.round(runningMs), leaseMs: engine.options.lock.leaseMs },
  );
  return true;
}

/**
 * Waits for a run with the caller's soft/hard timeouts and grace: its value, or the caller's
 * stale value in grace (timeout, failure), or `FactoryTimeoutError` / `FactoryError`.
 */
async function awaitFactory<T>(
  engine: CacheEngine,
  load: KeyLoad<T>,
  running: RunningFactory<T>,
  startedAt = Date.now(),
): Promise<T> {
  const { fullKey, userKey, options, stale } = load;
  const { work } = running;
  const { softTimeoutMs, hardTimeoutMs } = flightLimits(engine, options);
  // A background refresh has no caller to serve: it waits for its run, whatever the defaults.
  const limit = load.background ? undefined : stale ? (softTimeoutMs ?? hardTimeoutMs) : hardTimeoutMs;
  // `softTimeoutMs: 0` (only a soft timeout can be 0, so there is a value in grace): no wait.
  let timedOut = limit === 0;
  // A caller awaits the run meanwhile (an early refresh's own wait is nobody's): while one does,
  // only its replacement gives the run up (see `givenUp`).
  const waiting = !timedOut && !load.background;
  if (waiting) running.waiters++;
  try {
    if (!timedOut) {
      return limit === undefined
        ? await work
        : await withDeadline(work, Math.max(1, limit - (Date.now() - startedAt)), 'cache factory', () => {
            timedOut = true;
          });
    }
  } catch (error) {
    if (!timedOut) return failedRun(engine, load, running, error);
  } finally {
    if (waiting) running.waiters--;
  }
  if (!running.tracked) {
    running.tracked = true;
    engine.track(work.catch((error: unknown) => lateFailure(engine, load, running, error)));
  }
  if (stale && engine.clock.now() < stale.staleUntil) {
    running.lateStale ??= { fullKey, staleSince: load.staleSince, stale };
    engine.servedStale(fullKey, softTimeoutMs !== undefined ? 'soft_timeout' : 'hard_timeout');
    return stale.value;
  }
  // Its grace ended during the wait: nothing to serve, so the call goes on as one with
  // nothing stale (to the hard timeout from its start, or the run's end without one).
  if (stale) return awaitFactory(engine, { ...load, stale: undefined }, running, startedAt);
  throw new FactoryTimeoutError(userKey, limit!);
}

/**
 * A run whose callers all stopped waiting (soft or hard timeout) that then fails: one warning
 * naming the key (it was also logged as an anonymous "background cache work failed"). When the
 * first of them was served a value still in grace, that value is backed off as after a failure
 * served stale: without it, every call past the soft timeout (every call with `softTimeoutMs: 0`)
 * started one more run of the failing source. A run `close()` aborted is logged already (debug).
 */
function lateFailure<T>(
  engine: CacheEngine,
  load: KeyLoad<T>,
  running: RunningFactory<T>,
  error: unknown,
): void {
  const { run, context, lateStale } = running;
  if (context.signal.aborted && !context.rejected(error)) return;
  const stale = lateStale?.stale;
  const now = engine.clock.now();
  const backsOff =
    lateStale !== undefined &&
    stale !== undefined &&
    !context.rejected(error) &&
    !run.superseded &&
    !run.suspect &&
    now < stale.staleUntil &&
    !isFresh(stale, now);
  if (backsOff) {
    engine.logger.warn('factory failed after its callers were served the stale value; backing off', {
      key: load.userKey,
      error: String(error),
    });
    backOff(engine, lateStale.fullKey, stale, lateStale.staleSince);
    return;
  }
  engine.logger.warn('factory failed after its callers stopped waiting', {
    key: load.userKey,
    error: String(error),
  });
}

/**
 * A run that failed while its caller waited: the value in grace (backed off), else `FactoryError`;
 * a run given up while its caller waited (with no timeout of its own, or a longer one): the value
 * in grace, else the give-up's `FactoryTimeoutError` (`reason: 'abandoned'`).
 */
function failedRun<T>(engine: CacheEngine, load: KeyLoad<T>, running: RunningFactory<T>, error: unknown): T {
  const { fullKey, userKey, stale } = load;
  const { run, context } = running;
  if (context.rejected(error)) throw error;
  // An early refresh close() aborted: nothing failed, and nobody is served.
  if (load.background && context.signal.aborted && stale) return stale.value;
  if (stale && engine.clock.now() < stale.staleUntil) {
    if (load.background) {
      engine.logger.warn('early refresh failed; keeping the current value', {
        key: userKey,
        error: String(error),
      });
    } else {
      engine.servedStale(fullKey, 'factory_error');
      engine.logger.warn('factory failed; serving stale value', { key: userKey, error: String(error) });
    }
    // A write, delete or expire that reached the key during the run left L1 as it wants it:
    // the back-off copy would bring an older (maybe deleted) value back over it.
    if (!run.superseded && !run.suspect) {
      if (load.background) backOffEarlyRefresh(engine, fullKey, stale, load.staleSince);
      // A forced run's value still fresh keeps its own expiry (the back-off would end it sooner).
      else if (!isFresh(stale, engine.clock.now())) backOff(engine, fullKey, stale, load.staleSince);
    }
    return stale.value;
  }
  if (running.abandoned) throw running.abandoned;
  throw new FactoryError(userKey, { cause: error });
}

/**
 * Gives a run up (see `HungRuns`, `givenUp`): past its trusted time, replaced by another run of
 * its key or awaited by nobody. Its `ctx.signal` is aborted with a `FactoryTimeoutError`
 * (`reason: 'abandoned'`), so a `fetch(url, { signal })` stops and frees its socket; its work
 * settles with that error whether or not the factory heeds the signal, which drops it from the
 * runs in progress, the signals `close()` aborts, the promise `close()` waits on and the running
 * map; its late value, if it ever comes, is not written (superseded). Counted, and logged per
 * key at the 1st, 2nd, 4th… give-up (a hung source would otherwise log once per lease).
 */
export function abandonRun(engine: CacheEngine, running: RunningFactory<unknown>, runningMs: number): void {
  const { run, context } = running;
  if (running.abandoned || running.abort.signal.aborted) return;
  const reason = new FactoryTimeoutError(context.key, running.trustedMs, 'abandoned');
  running.abandoned = reason;
  run.superseded = true;
  engine.metrics.factoryRunAbandoned();
  running.abort.abort(reason);
  running.giveUp(reason);
  const count = engine.hungRuns.sampled(context.key);
  if (count !== undefined) {
    engine.logger.warn(
      'a factory run was abandoned: it outlived lock.leaseMs (and its hard timeout) with nobody waiting, or another run of its key replaced it; its ctx.signal is aborted (give the factory a timeout of its own, or pass it ctx.signal)',
      {
        key: context.key,
        runningMs: Math.round(runningMs),
        trustedMs: running.trustedMs,
        ...(count > 1 ? { abandoned: count } : {}),
      },
    );
  }
}

/**
 * What an L2 read saw, for {@link KeyLoad.l2Seen}: the value's `createdAt`, null for no value,
 * undefined when the read failed (`held`, the read's own outcome: see `readL2`). A failed read is no
 * proof that L2 held nothing: taken as one, a run spanning a reconnect cached its value over
 * a delete the bus lost, since L2 held nothing after it either.
 */
function seenInL2(remote: L2Read | undefined, held: L2Held): number | null | undefined {
  if (remote) return remote.entry.createdAt;
  return held.bytes === undefined ? undefined : null;
}

/**
 * Whether L2 still holds what the run saw before it started (same `createdAt`), asked by a run
 * the bus connection closed during: a write another instance made while this one's bus was
 * down changed L2, so the run's result, maybe read from the source before that write, is not
 * cached over it (`changed`). From the resubscription on, any change supersedes the run
 * through the bus as usual. `unknown` proves neither: L2 unreadable (before or now), or
 * holding nothing before and after, which a write then delete both lost in the outage leave
 * too; such a run is cached in L1 only while the bus awaits its resync, otherwise not at all.
 */
async function checkL2(
  engine: CacheEngine,
  load: Pick<KeyLoad<unknown>, 'fullKey' | 'l2Seen'>,
): Promise<'unchanged' | 'changed' | 'unknown'> {
  if (!engine.tier || load.l2Seen === undefined) return 'unknown';
  let seen: number | null | undefined;
  try {
    const held: L2Held = {};
    seen = seenInL2(await readL2(engine, load.fullKey, held), held);
  } catch {
    // `onBackendError: 'throw'`: L2 cannot be checked.
    return 'unknown';
  }
  return unchangedOrNot(load.l2Seen, seen);
}

/** {@link checkL2}'s verdict from what L2 held before the run and holds now. */
export function unchangedOrNot(
  before: number | null | undefined,
  now: number | null | undefined,
): 'unchanged' | 'changed' | 'unknown' {
  if (before === undefined || now === undefined || (before === null && now === null)) return 'unknown';
  return before === now ? 'unchanged' : 'changed';
}

/**
 * After a failure served stale, keep the stale value "fresh" in L1 briefly so the source can
 * recover. Not once a change of the key was heard since `since` (when the value was last known
 * current, see `KeyLoad.staleSince`), but for the late message of that value's own write: the
 * copy would put the value it replaced (maybe deleted) back in L1 for the whole back-off, with
 * no message to come that drops it. Such a change during the run supersedes it (no back-off
 * then either); one heard between the read and the run's start (a lease's round trip, say)
 * did not. A copy is made as an L1 fill is (see `FillGuard.mayFill`), so when the changes of
 * that time were forgotten (4,096 names since), none is made: the next call reads L2, and under
 * a lease finds the failed holder's mark and serves the value in grace without calling the
 * source (see `takeOver`); with locks off it runs the factory.
 */
export function backOff(engine: CacheEngine, fullKey: string, stale: CacheEntry, since?: number): void {
  const backoffMs = engine.options.graceBackoffMs;
  // L2-only: no copy to keep; the failed holder's mark in Redis backs the source off instead.
  if (backoffMs <= 0 || !engine.l1Enabled) return;
  if (since !== undefined && !engine.fills.mayFill(fullKey, stale.tags, since, stale.writeId)) return;
  const now = engine.clock.now();
  // Not sliding: hits during the back-off would otherwise carry the stale value a whole window
  // past it, and the source would get its retry only once nobody read the key for that long.
  // No compute time either: XFetch would otherwise refresh the copy early, calling the failing
  // source again well before the back-off ends (at once when it took longer than the back-off).
  // Nor a refresh-ahead: the copy's freshness left is the back-off, under most thresholds.
  const expiresAt = Math.min(now + backoffMs, stale.staleUntil);
  const entry = {
    ...stale,
    expiresAt,
    computeMs: 0,
    slidingMs: undefined,
    maxExpiresAt: undefined,
    refreshBlockedUntil: expiresAt,
  };
  engine.l1Set(fullKey, entry, estimateSize(entry.value));
}

/**
 * After a failed early refresh the value is still fresh, and stays so until its own expiry: a
 * back-off copy would end its freshness at the back-off's end. Only its compute time goes (in
 * place, as a hit slides it), so hits no longer refresh it early and the next run is the one at
 * expiry, at least `graceBackoffMs` away. When expiry is nearer, the back-off copy keeps the
 * value fresh until the back-off ends, as after any failure.
 */
function backOffEarlyRefresh(
  engine: CacheEngine,
  fullKey: string,
  current: CacheEntry,
  since: number | undefined,
): void {
  const backoffMs = engine.options.graceBackoffMs;
  if (backoffMs <= 0) return;
  const now = engine.clock.now();
  if (refreshTarget(current) >= now + backoffMs) {
    current.computeMs = 0;
    // The refresh-ahead threshold tries again after the back-off (computeMs means nothing to it).
    current.refreshBlockedUntil = now + backoffMs;
  } else backOff(engine, fullKey, current, since);
}

/**
 * Whether L2's `entry` is another write than `current`, the value a refresh was decided on:
 * then another instance refreshed (or changed) the key meanwhile. Write ids are unique per
 * write (see `WriteIds`), so no clock is compared; `createdAt` (the writer's clock: app
 * servers' clocks may disagree by more than a value's age) only for a value without an id, one
 * of the previous release.
 */
function anotherWrite(entry: CacheEntry, current: CacheEntry): boolean {
  if (entry.writeId !== undefined && current.writeId !== undefined) return entry.writeId !== current.writeId;
  return entry.createdAt > current.createdAt;
}

/**
 * Starts an early refresh of `entry` (see {@link refreshEarly}) when XFetch or the refresh-ahead
 * threshold says it is due at `now`; `fromFlight`: called by the key's own load (an L2-only
 * cache's hit), whose flight ends with the value.
 */
export function refreshIfDue<T>(
  engine: CacheEngine,
  fullKey: string,
  userKey: string,
  factory: Factory<T>,
  options: GetOrSetOptions,
  entry: CacheEntry,
  now: number,
  fromFlight = false,
): void {
  const beta = options.earlyRefreshBeta ?? engine.options.earlyRefreshBeta;
  const threshold = options.refreshThresholdMs ?? engine.options.refreshThresholdMs;
  if (
    (entry.computeMs > 0 && shouldRefreshEarly(entry, now, beta, engine.random)) ||
    (threshold !== undefined && shouldRefreshAhead(entry, now, threshold))
  )
    refreshEarly(engine, fullKey, userKey, factory, options, entry, fromFlight);
}

export function refreshEarly<T>(
  engine: CacheEngine,
  fullKey: string,
  userKey: string,
  factory: Factory<T>,
  options: GetOrSetOptions,
  current: CacheEntry,
  fromFlight = false,
): void {
  // A load in flight (an L1 miss) makes a refresh needless, unless it is the caller.
  if (engine.refreshing.has(fullKey) || (!fromFlight && engine.flights.has(fullKey)) || engine.closed) return;
  // L2-only: another instance held the lease a moment ago for this very value (see `BusyLeases`).
  if (!engine.l1Enabled && engine.busyLeases.busy(fullKey, current, engine.clock.now())) return;
  const slot = {};
  engine.refreshing.set(fullKey, slot);
  const freeSlot = () => {
    if (engine.refreshing.get(fullKey) === slot) engine.refreshing.delete(fullKey);
  };
  // `current` is L1's copy, looked up in this same turn.
  const staleSince = engine.fills.epoch;
  const refresh = (async () => {
    let token: string | undefined;
    const held: L2Held = {};
    if (engine.tier && engine.options.lock.enabled) {
      token = randomUUID();
      const lease = await engine.tier.acquireLease(fullKey, token, engine.options.lock.leaseMs);
      if (lease === 'busy') {
        // Another instance is refreshing; its bus message reaches us. Until then a hit of a key
        // past its refresh threshold would try the lease again, one Redis call per hit.
        const now = engine.clock.now();
        current.refreshBlockedUntil = now + engine.options.lock.pollMs;
        // An L2-only cache's next hit decodes a new entry, without that mark: remembered here.
        if (!engine.l1Enabled)
          engine.busyLeases.remember(fullKey, current, now + engine.options.lock.pollMs, now);
        return;
      }
      if (lease === 'unavailable') token = undefined;
      else if (await engine.tier.holderFailed(fullKey)) {
        // Another instance's run of the key failed within its back-off: not from here either.
        await engine.tier.releaseLease(fullKey, token);
        current.refreshBlockedUntil =
          engine.clock.now() + Math.max(engine.options.graceBackoffMs, 2 * engine.options.lock.pollMs);
        return;
      } else {
        const remote = await readL2(engine, fullKey, held);
        const later = engine.clock.now();
        const threshold = options.refreshThresholdMs ?? engine.options.refreshThresholdMs ?? 0;
        // Within the refresh-ahead threshold L2's value is ending, however capped our copy is.
        const ending = (entry: CacheEntry) => threshold > 0 && refreshTarget(entry) - later < threshold;
        if (
          remote &&
          (anotherWrite(remote.entry, current) ||
            (isFresh(remote.entry, later) &&
              refreshTarget(remote.entry) > refreshTarget(current) &&
              !ending(remote.entry)))
        ) {
          // Refreshed by another instance between our decision and the lease, or still fresh in
          // L2 for longer than our copy, which `l1.maxTtlMs` capped: L2's value is not ending.
          // The capped copy would meet the threshold again on the next hit: not before L2's does.
          if (threshold > 0) remote.entry.refreshBlockedUntil = refreshTarget(remote.entry) - threshold;
          await engine.tier.releaseLease(fullKey, token);
          engine.fill(fullKey, remote.entry, remote.bytes, remote.since);
          return;
        }
      }
    }
    // Without a lease (locks off) the run has not read L2: one read now, so that its write is a
    // compare-and-set against what L2 holds as it starts, as under a lease (see
    // `KeyLoad.l2Held`). Not after a lease Redis failed to grant: that read would fail too.
    else if (engine.tier) await readL2(engine, fullKey, held);
    // No timeouts (see `awaitFactory`): nobody waits on a background refresh.
    const load: KeyLoad<T> = {
      fullKey,
      userKey,
      factory,
      options,
      stale: current as CacheEntry<T>,
      staleSince,
      background: true,
      l2Held: { ...held },
    };
    const running = startFactory(engine, load, token);
    const abandon = setTimeout(() => {
      freeSlot();
      abandonRefresh(engine, running, userKey);
    }, engine.options.lock.leaseMs);
    abandon.unref();
    try {
      await awaitFactory(engine, load, running);
    } finally {
      clearTimeout(abandon);
    }
  })().finally(freeSlot);
  engine.track(refresh);
}

/**
 * An early refresh still running `lock.leaseMs` after its factory started: its key is freed for
 * the next refresh (the lease it took has expired by now, so another instance may refresh it
 * already), and the run is superseded, as a `getOrSet` run past the lease is (see
 * {@link outlivedLease}): its value, if it ever comes, is not cached over the newer one's, and
 * the value it replaces is no longer kept for it. Kept, a factory that never settled (a fetch
 * with no timeout of its own) held the key's refresh for as long as the process lived: no hit
 * refreshed the key early again. Logged once per run: only the user knows a slow factory from a
 * hung one.
 */
function abandonRefresh(engine: CacheEngine, running: RunningFactory<unknown>, userKey: string): void {
  if (running.run.superseded) return;
  running.run.superseded = true;
  engine.logger.warn(
    'an early refresh outlived lock.leaseMs and was abandoned: the key may be refreshed again (set lock.leaseMs above the slowest factory run)',
    { key: userKey, runningMs: Date.now() - running.startedAt, leaseMs: engine.options.lock.leaseMs },
  );
}

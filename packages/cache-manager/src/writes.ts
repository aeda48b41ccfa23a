import type { CacheEngine } from './cache-engine.js';
import type { SetOptions } from './cache-options.js';
import { createEntry } from './entry.js';
import { SerializationError } from './errors.js';
import { estimateSize } from './l1/estimate-size.js';
import { l1Charge } from './read-path.js';
import { cloneForL1, frozenCopy } from './value-copies.js';

/** Writes through L1, then L2 (awaited or in background), then tells other instances. */
export async function writeValue(
  engine: CacheEngine,
  fullKey: string,
  value: unknown,
  options: SetOptions,
  computeMs = 0,
): Promise<void> {
  engine.runs.supersedeKey(fullKey);
  const remote = writeEntry(engine, fullKey, value, options, computeMs);
  if (engine.options.writeMode === 'background') engine.track(remote);
  else await remote;
}

/** Writes of one `setMany` sent to Redis at once (see {@link writeMany}). */
const WRITE_BATCH_ITEMS = 1_024;

/** One `setMany` item, by full key. */
export interface WriteItem {
  fullKey: string;
  value: unknown;
  options: SetOptions;
}

/**
 * `setMany`: every L1 write at once, the L2 writes {@link WRITE_BATCH_ITEMS} at a time (awaited
 * or in background, as `writeMode` says; see {@link sendWrites}). All at once, the pipelines of
 * 100,000 writes queued in Redis past their own deadlines: hundreds "failed" and opened the
 * breaker while they still landed. An item whose value cannot be encoded rejects the call once
 * the others are written, as before; so does a failed L2 write with `onBackendError: 'throw'`.
 */
export async function writeMany(engine: CacheEngine, items: readonly WriteItem[]): Promise<void> {
  const writes: PreparedWrite[] = [];
  let failure: { error: unknown } | undefined;
  for (const { fullKey, value, options } of items) {
    engine.runs.supersedeKey(fullKey);
    try {
      const send = prepareWrite(engine, fullKey, value, options, 0);
      writes.push({ send, skip: () => skipWrite(engine, fullKey), fullKey, tags: send.tags });
    } catch (error) {
      failure ??= { error };
    }
  }
  if (engine.options.writeMode === 'background') engine.track(sendWrites(engine, writes));
  else await sendWrites(engine, writes);
  if (failure) throw failure.error;
}

/** An L2 write prepared by {@link prepareWrite} (L1 written already), for {@link sendWrites}. */
export interface PreparedWrite {
  /** Sends it; resolves once it landed or was recorded as lost. */
  send: () => Promise<unknown>;
  /** Records it as lost without sending it (see {@link skipWrite}). */
  skip: () => void;
  /**
   * The key it writes and its tags as stored: while it waits for the chunks before it, a change
   * of the key supersedes it (see {@link sendWrites}). Without them it is sent whatever comes.
   */
  fullKey?: string;
  tags?: readonly string[];
}

/**
 * Sends prepared L2 writes {@link WRITE_BATCH_ITEMS} at a time, each chunk once the previous one
 * has settled (`setMany`, and the values of a `getOrSetMany` factory run); `then` once they are
 * done (a lease release, see {@link awaitInOrder}). The first chunk is always sent, so that a
 * `setMany` made while Redis is failing still tries, as a `set` does; after a read
 * (`afterRedisWait`: a `getOrSetMany`'s) that failed (`readFailed`, that read's own outcome), or
 * with Redis failing as a whole, it is sent but not waited for, nor is `then` (which follows it in
 * the background). After a chunk that
 * left Redis failing (see {@link redisFailing}; with `onBackendError: 'throw'`, a write of it
 * rejected) the chunks left are not sent but recorded as lost, as a failed write is
 * ({@link skipWrite}): sent one after the other, each waited its deadline (three for a
 * 2,500-item `setMany` on a frozen Redis), and sent in the background instead, a chunk could
 * land after a later delete of its keys. With `onBackendError: 'throw'` the call then rejects
 * with the first error. A write that waits for its chunk is superseded by a change of its key
 * made meanwhile, here or announced by another instance (a write, delete, expire, tag delete or
 * expire, clear: see `FactoryRuns`), and then not sent: the change went out at once, and the
 * write, sent after it, brought back the value it replaced (a `setMany` resolved in background
 * mode, then a `delete` of one of its keys).
 */
export async function sendWrites(
  engine: CacheEngine,
  writes: readonly PreparedWrite[],
  then?: () => Promise<unknown>,
  afterRedisWait = false,
  readFailed = false,
): Promise<void> {
  let failed: { error: unknown } | undefined;
  /** The first chunk, sent but not waited for (see above). */
  let unwaited: Promise<unknown> | undefined;
  let start = 0;
  // The writes of the later chunks, watched for changes of their keys until they go out.
  const waiting = writes.map((write, index) =>
    index < WRITE_BATCH_ITEMS || write.fullKey === undefined
      ? undefined
      : engine.runs.start(write.fullKey, write.tags ?? [], 'write'),
  );
  const stopWaiting = (index: number): boolean => {
    const waited = waiting[index];
    if (waited === undefined) return false;
    waiting[index] = undefined;
    engine.runs.end(writes[index]!.fullKey!, waited);
    return waited.superseded;
  };
  try {
    for (; start < writes.length; start += WRITE_BATCH_ITEMS) {
      if (start > 0 && (failed || redisFailing(engine))) break;
      const sends: Promise<unknown>[] = [];
      for (let index = start; index < Math.min(start + WRITE_BATCH_ITEMS, writes.length); index += 1) {
        if (!stopWaiting(index)) sends.push(writes[index]!.send());
      }
      const sent = Promise.allSettled(sends);
      if (start === 0 && afterRedisWait && redisFailing(engine, readFailed)) {
        unwaited = sent;
        start += WRITE_BATCH_ITEMS;
        break;
      }
      for (const outcome of await sent) {
        if (outcome.status === 'rejected') failed ??= { error: outcome.reason };
      }
    }
    if (start < writes.length) {
      for (let index = start; index < writes.length; index += 1) {
        // A superseded write is not lost: the change that superseded it stands.
        if (!stopWaiting(index)) writes[index]!.skip();
      }
      engine.metrics.degraded('set', 'skipped');
    }
  } finally {
    for (let index = 0; index < waiting.length; index += 1) stopWaiting(index);
  }
  if (unwaited) {
    // In the background, but `then` (the leases' release) still after the writes: released at
    // once, a lease on another master than its value's could free the key before the value
    // landed, and a waiter on another instance took it over and ran the factory again.
    engine.track(then ? unwaited.then(then) : unwaited);
  } else if (then) {
    if (failed) engine.track(then());
    else await awaitInOrder(engine, [then], false, readFailed);
  }
  if (failed) throw failed.error;
}

/**
 * Whether a call stops waiting for Redis: Redis as a whole is failing (`RedisTier.healthy`: on
 * one node a call failed since Redis last answered, the caller's or another's; on a Cluster one
 * that no master answered around), and `onBackendError` is `degrade`. With `throw`, the caller
 * is owed the outcome of its own calls, and stops at the first of them that rejects. A hint for
 * an optional wait only: one master of a Cluster failing leaves it false, so the writes of the
 * other masters' keys are still sent and waited for, not recorded as lost; the caller's own
 * failed read (`readFailed`) stops the wait as well.
 */
function redisFailing(engine: CacheEngine, readFailed = false): boolean {
  return engine.options.onBackendError === 'degrade' && (readFailed || engine.tier?.healthy === false);
}

/**
 * Records an L2 write that was not sent ({@link sendWrites}) as a failed one is (see
 * {@link prepareWrite}): L1 has the value, the other instances are told once Redis answers.
 */
export function skipWrite(engine: CacheEngine, fullKey: string): void {
  engine.bus?.missed('set', [fullKey]);
  announceSet(engine, fullKey);
}

/**
 * Runs `steps`, Redis calls that must go one after the other (a factory run's write, then the
 * lease it ran under), every one whatever the others do. In `writeMode: 'await'` the caller
 * waits for them, so that they have landed when it returns, but not past a Redis failure (see
 * {@link redisFailing}) nor after the caller's own L2 read failed (`readFailed`: on a Cluster,
 * its key's master may be the one failing): the steps left then go on in the background
 * (`close()` waits for them; a write that fails there is recorded as lost, as ever) and the
 * caller returns. Waited for to
 * the end, a `getOrSet` whose L2 read had timed out waited a second deadline for its write, and
 * one whose write timed out a second for its lease release. With `onBackendError: 'throw'` the
 * first step that rejects ends the wait with its error. In `writeMode: 'background'` every step
 * goes in the background, unless `waitInBackgroundMode` (a failed holder's release, which its
 * error waits for either way). A step must be harmless if it lands late: a write sent already,
 * a release; writes not sent yet are {@link sendWrites}' to skip.
 */
export async function awaitInOrder(
  engine: CacheEngine,
  steps: readonly (() => Promise<unknown>)[],
  waitInBackgroundMode = false,
  readFailed = false,
): Promise<void> {
  if (engine.options.writeMode === 'background' && !waitInBackgroundMode) {
    engine.track(runEvery(steps, 0));
    return;
  }
  for (let index = 0; index < steps.length; index += 1) {
    if (redisFailing(engine, readFailed)) {
      engine.track(runEvery(steps, index));
      return;
    }
    try {
      await steps[index]!();
    } catch (error) {
      engine.track(runEvery(steps, index + 1));
      throw error;
    }
  }
}

/** Runs `steps` from `from` on, each once the previous one has settled; rejects with the first error. */
async function runEvery(steps: readonly (() => Promise<unknown>)[], from: number): Promise<void> {
  let failed: { error: unknown } | undefined;
  for (let index = from; index < steps.length; index += 1) {
    try {
      await steps[index]!();
    } catch (error) {
      failed ??= { error };
    }
  }
  if (failed) throw failed.error;
}

/**
 * Writes L1 synchronously (throws `SerializationError` synchronously when the value cannot
 * be encoded) and returns the L2 write in flight.
 */
export function writeEntry(
  engine: CacheEngine,
  fullKey: string,
  value: unknown,
  options: SetOptions,
  computeMs: number,
  expected?: Buffer | null,
  /** The writing run's lease token: the write is refused once another holder has the lease. */
  leaseToken?: string,
): Promise<boolean> {
  return prepareWrite(engine, fullKey, value, options, computeMs, false, expected, leaseToken)();
}

/**
 * Writes L1 only, for a factory run whose value L2 could not vouch for while the bus awaits
 * its resync (see `FactoryRun.suspect`): the resync drops it with the rest of L1, and L2 and
 * the other instances never see it. Throws `SerializationError` as {@link writeEntry} does.
 */
export function writeLocal(
  engine: CacheEngine,
  fullKey: string,
  value: unknown,
  options: SetOptions,
  computeMs: number,
): void {
  prepareWrite(engine, fullKey, value, options, computeMs, true);
}

/** The L2 part of a write prepared by {@link prepareWrite}, and the entry's tags as stored. */
export type PreparedSend = (() => Promise<boolean>) & { readonly tags: readonly string[] };

/** {@link writeEntry}'s L1 part, done now, and its L2 part, to start when called. */
export function prepareWrite(
  engine: CacheEngine,
  fullKey: string,
  value: unknown,
  options: SetOptions,
  computeMs: number,
  localOnly = false,
  expected?: Buffer | null,
  leaseToken?: string,
): PreparedSend {
  // Cheap enough for every write; a function nested in a value is refused by the encoders (and
  // by the clone of `clone` mode), a memory-only cache in the other modes holds it as it is.
  if (typeof value === 'function' || typeof value === 'symbol') {
    throw new SerializationError('encode', {
      cause: new TypeError(`a ${typeof value} cannot be stored`),
      details: { key: fullKey },
    });
  }
  // An L2 read of the key in flight answers with the value this write replaces (not into L1),
  // or, landing after it, with this very value, which its id tells (see `FillGuard`). L2-only
  // too, though no read fills L1 there: a load in flight is not joined after the write (see
  // `joinableFlight`), as its outcome may be the value in grace the write replaced.
  const writeId = engine.writeIds.next();
  engine.fills.changedKey(fullKey, writeId);
  const now = engine.clock.now();
  const entry = createEntry(
    l1Value(engine, value, fullKey),
    now,
    options.ttlMs ?? engine.options.ttlMs,
    options.graceMs ?? engine.options.graceMs,
    computeMs,
    engine.tagsOf(fullKey, options.tags ?? []),
    options.slidingTtlMs ?? engine.options.slidingTtlMs,
    writeId,
  );
  const tier = engine.tier;
  if (!tier || localOnly) {
    if (engine.l1Enabled) engine.l1Set(fullKey, entry, estimateSize(value));
    announceSet(engine, fullKey);
    return Object.assign(() => Promise.resolve(true), { tags: entry.tags });
  }
  const encoded = engine.codec.encode(entry, fullKey);
  if (engine.l1Enabled) engine.l1Set(fullKey, entry, l1Charge(encoded, entry));
  const physicalTtl = Number.isFinite(entry.staleUntil) ? entry.staleUntil - now : undefined;
  // Reads may slide a sliding value up to its bound (plus grace) without touching its tag sets.
  const tagTtl = entry.slidingMs
    ? finiteOrUndefined(entry.maxExpiresAt! - entry.expiresAt + entry.staleUntil - now)
    : physicalTtl;
  const remote = async () => {
    let written = false;
    try {
      if (expected === undefined) written = await tier.set(fullKey, encoded, physicalTtl, entry.tags, tagTtl);
      else {
        const replaced = await tier.setIfUnchanged(
          fullKey,
          expected,
          encoded,
          physicalTtl,
          entry.tags,
          tagTtl,
          leaseToken,
        );
        if (replaced === false) {
          // Another instance changed the key since the run read it (its bus message not here
          // yet), or a forced run took the run's lease over: its change stands in L2, and our
          // older value leaves L1 (that message would
          // evict it too). Served to the run's callers only, as a superseded run's. Found by its
          // write id, not by identity: under `l1.maxTtlMs` L1 holds a capped copy of `entry`,
          // which stayed (served over the change for maxTtlMs, with no message to come).
          if (engine.l1.peek(fullKey)?.writeId === writeId) engine.l1.delete(fullKey);
          return false;
        }
        written = replaced === true;
      }
    } catch (error) {
      // L1 has the value all the same (`onBackendError: 'throw'`): it is announced.
      engine.bus?.missed('set', [fullKey]);
      announceSet(engine, fullKey);
      throw error;
    }
    if (written) {
      engine.metrics.written(encoded.length);
      // Published once the value is in L2 (waiters woken by it read L2), but not awaited: a
      // write costs one round trip, and other instances' L1s are evicted a moment later.
      const published = engine.bus?.publish('set', [fullKey], { writeIds: [writeId] });
      if (published) engine.track(published);
    } else {
      // L1 has a value L2 does not: the other instances read L2 (see `InvalidationBus.missed`),
      // told once Redis answers. Published now, on a Redis that hangs the message cost one
      // more deadline in the background (and kept close() waiting for it).
      engine.bus?.missed('set', [fullKey]);
    }
    announceSet(engine, fullKey);
    return true;
  };
  return Object.assign(remote, { tags: entry.tags });
}

/**
 * The `set` event, once both tiers hold the value (or L2's write failed, and is recorded as
 * lost) and its message is sent: a listener that deletes or rewrites the key acts after the
 * write. Emitted before the L1 write, a listener's delete was undone in L1 by it; before the
 * L2 write, its DEL could reach Redis ahead of the SET.
 */
function announceSet(engine: CacheEngine, fullKey: string): void {
  const listeners = engine.listeners.set;
  if (listeners) engine.events.emit('set', listeners, { key: fullKey });
}

/** What L1 keeps of a value the caller passed (see `l1.mode`): its own copy, but in `reference` mode. */
function l1Value(engine: CacheEngine, value: unknown, fullKey: string): unknown {
  const mode = engine.l1Mode;
  if (mode === 'reference') return value;
  return mode === 'clone' ? cloneForL1(value, fullKey) : frozenCopy(value);
}

function finiteOrUndefined(ms: number): number | undefined {
  return Number.isFinite(ms) ? ms : undefined;
}

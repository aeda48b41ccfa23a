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
 * or in background, as `writeMode` says). All at once, the pipelines of 100,000 writes queued
 * in Redis past their own deadlines: hundreds "failed" and opened the breaker while they still
 * landed. An item whose value cannot be encoded rejects the call once the others are
 * written, as before; so does a failed L2 write with `onBackendError: 'throw'`.
 */
export async function writeMany(engine: CacheEngine, items: readonly WriteItem[]): Promise<void> {
  const remotes: (() => Promise<void>)[] = [];
  let failure: { error: unknown } | undefined;
  for (const { fullKey, value, options } of items) {
    engine.runs.supersedeKey(fullKey);
    try {
      remotes.push(prepareWrite(engine, fullKey, value, options, 0));
    } catch (error) {
      failure ??= { error };
    }
  }
  const send = () => sendWrites(remotes);
  if (engine.options.writeMode === 'background') engine.track(send());
  else await send();
  if (failure) throw failure.error;
}

/**
 * Sends prepared L2 writes {@link WRITE_BATCH_ITEMS} at a time, each chunk once the previous one
 * has settled (`setMany`, and the values of a `getOrSetMany` factory run). Every chunk is sent
 * even after one rejects (`onBackendError: 'throw'`): a write never attempted would not be
 * recorded as lost, and its key would keep in this L1 a value that neither L2 nor the other
 * instances ever get. The first error is thrown once all are done.
 */
export async function sendWrites(remotes: readonly (() => Promise<void>)[]): Promise<void> {
  let failed: { error: unknown } | undefined;
  for (let start = 0; start < remotes.length; start += WRITE_BATCH_ITEMS) {
    const chunk = remotes.slice(start, start + WRITE_BATCH_ITEMS);
    for (const outcome of await Promise.allSettled(chunk.map((remote) => remote()))) {
      if (outcome.status === 'rejected') failed ??= { error: outcome.reason };
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
): Promise<void> {
  return prepareWrite(engine, fullKey, value, options, computeMs)();
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

/** {@link writeEntry}'s L1 part, done now, and its L2 part, to start when called. */
export function prepareWrite(
  engine: CacheEngine,
  fullKey: string,
  value: unknown,
  options: SetOptions,
  computeMs: number,
  localOnly = false,
): () => Promise<void> {
  // Cheap enough for every write; a function nested in a value is refused by the encoders (and
  // by the clone of `clone` mode), a memory-only cache in the other modes holds it as it is.
  if (typeof value === 'function' || typeof value === 'symbol') {
    throw new SerializationError('encode', {
      cause: new TypeError(`a ${typeof value} cannot be stored`),
      details: { key: fullKey },
    });
  }
  const now = engine.clock.now();
  const entry = createEntry(
    l1Value(engine, value, fullKey),
    now,
    options.ttlMs ?? engine.options.ttlMs,
    options.graceMs ?? engine.options.graceMs,
    computeMs,
    options.tags ?? [],
    options.slidingTtlMs ?? engine.options.slidingTtlMs,
  );
  const tier = engine.tier;
  if (!tier || localOnly) {
    engine.l1Set(fullKey, entry, estimateSize(value));
    announceSet(engine, fullKey);
    return () => Promise.resolve();
  }
  const encoded = engine.codec.encode(entry, fullKey);
  engine.l1Set(fullKey, entry, l1Charge(encoded, entry));
  const physicalTtl = Number.isFinite(entry.staleUntil) ? entry.staleUntil - now : undefined;
  // Reads may slide a sliding value up to its bound (plus grace) without touching its tag sets.
  const tagTtl = entry.slidingMs
    ? finiteOrUndefined(entry.maxExpiresAt! - entry.expiresAt + entry.staleUntil - now)
    : physicalTtl;
  const remote = async () => {
    let written = false;
    try {
      written = await tier.set(fullKey, encoded, physicalTtl, entry.tags, tagTtl);
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
      const published = engine.bus?.publish('set', [fullKey]);
      if (published) engine.track(published);
    } else {
      // L1 has a value L2 does not: the other instances read L2 (see `InvalidationBus.missed`),
      // told once Redis answers. Published now, on a Redis that hangs the message cost one
      // more deadline in the background (and kept close() waiting for it).
      engine.bus?.missed('set', [fullKey]);
    }
    announceSet(engine, fullKey);
  };
  return remote;
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
  const mode = engine.options.l1.mode;
  if (mode === 'reference') return value;
  return mode === 'clone' ? cloneForL1(value, fullKey) : frozenCopy(value);
}

function finiteOrUndefined(ms: number): number | undefined {
  return Number.isFinite(ms) ? ms : undefined;
}

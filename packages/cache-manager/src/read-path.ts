import type { CacheEngine } from './cache-engine.js';
import { type CacheEntry, isFresh, slideEntry } from './entry.js';
import type { KeyTtl } from './key-ttl.js';
import { estimateSize } from './l1/estimate-size.js';
import { isCompressed } from './serialization/entry-codec.js';

/**
 * The read path below L1: L2 reads (one key, or many in one MGET) and their decoding. The L1
 * part of `get` and `getOrSet` stays in {@link CacheEngine}, a direct synchronous path.
 */

/** An entry read from L2, with what L1 is charged for it (see {@link l1Charge}). */
export interface L2Read {
  entry: CacheEntry;
  bytes: number;
  /** `fills.epoch` as the read started: pass it to `CacheEngine.fill`. */
  since: number;
}

/**
 * What an L2 read found, as stored (undecodable bytes included), for a factory run's
 * compare-and-set write (see `KeyLoad.l2Held`): the bytes, null for no value, undefined when
 * the read failed.
 */
export interface L2Held {
  bytes?: Buffer | null | undefined;
  /**
   * The tags of the value `bytes` hold, when decoded: the tag sets a run extends with the value
   * (see `RedisTier.extendIfUnchanged`).
   */
  tags?: readonly string[] | undefined;
  /**
   * The id of the write whose value `bytes` hold (`CacheEntry.writeId`), when decoded and it
   * has one: a bus message of that write announces no change since the read (see
   * `FactoryRuns.supersedeKey`).
   */
  writeId?: number | undefined;
}

/**
 * What L1 is charged for an entry encoded as `bytes`: their length, a fair measure of the
 * decoded value, unless they are compressed. Then the value may be a thousand times larger
 * than its bytes, and its estimate is taken when larger. Only values over the compression
 * threshold are compressed, and the estimate walks a bounded part of the value.
 */
export function l1Charge(bytes: Buffer, entry: CacheEntry): number {
  return isCompressed(bytes) ? Math.max(bytes.length, estimateSize(entry.value)) : bytes.length;
}

/**
 * One key from L2, decoded; undefined when absent, undecodable or not read. `held` tells these
 * apart: it gets what this very read found (see {@link L2Held}), undefined bytes when it failed.
 * The read's own outcome, not the tier's `healthy` after it: another call may have answered or
 * failed in between (another request, another master of a Cluster).
 */
export async function readL2(
  engine: CacheEngine,
  fullKey: string,
  held?: L2Held,
): Promise<L2Read | undefined> {
  const since = engine.fills.epoch;
  const read = await engine.tier!.getOrFailed(fullKey, NOT_READ);
  const bytes = read === NOT_READ ? undefined : read;
  if (held) {
    held.bytes = read === NOT_READ ? undefined : (read ?? null);
    held.tags = undefined;
    held.writeId = undefined;
  }
  if (!bytes) return undefined;
  const loading = engine.codec.prepare(bytes);
  if (loading) await loading;
  // One decode at a time (see DecodeTurns): no await from here to the return.
  const turn = engine.decodeTurns.take(bytes);
  if (turn) await turn;
  const entry = decodeEntry(engine, fullKey, bytes);
  if (held && entry) {
    held.tags = entry.tags;
    held.writeId = entry.writeId;
  }
  // L2-only: no L1 to charge (the estimate of a compressed value would walk it for nothing).
  return entry ? { entry, bytes: engine.l1Enabled ? l1Charge(bytes, entry) : 0, since } : undefined;
}

/**
 * {@link readL2}, read once more when its value is fresh but a change of the key overtook the
 * read (see `FillGuard`), unless the change was the write of the value read: the second read
 * starts after the change, so it is current, and may fill L1 (`getOrSet`'s read; `get` does
 * the same inline).
 */
export async function readL2Current(
  engine: CacheEngine,
  fullKey: string,
  held?: L2Held,
): Promise<L2Read | undefined> {
  const read = await readL2(engine, fullKey, held);
  if (
    read === undefined ||
    // L2-only: the value read is L2's as of after the call began, and fills nothing.
    !engine.l1Enabled ||
    engine.fills.mayFill(fullKey, read.entry.tags, read.since, read.entry.writeId) ||
    !isFresh(read.entry, engine.clock.now())
  )
    return read;
  return readL2(engine, fullKey, held);
}

/** One key from L2 as stored, sliding nothing (see `RedisTier.peek`); undefined when absent or undecodable. */
export async function peekL2(engine: CacheEngine, fullKey: string): Promise<CacheEntry | undefined> {
  const bytes = await engine.tier!.peek(fullKey);
  if (!bytes) return undefined;
  const loading = engine.codec.prepare(bytes);
  if (loading) await loading;
  const turn = engine.decodeTurns.take(bytes);
  if (turn) await turn;
  return decodeEntry(engine, fullKey, bytes);
}

/** Decodes an L2 value; one that cannot be decoded is counted, logged and read as a miss. */
export function decodeEntry(engine: CacheEngine, fullKey: string, bytes: Buffer): CacheEntry | undefined {
  try {
    return engine.codec.decode(bytes);
  } catch (error) {
    engine.metrics.error('l2', 'decode');
    engine.logger.warn('could not decode an L2 value; treating it as a miss', {
      key: fullKey,
      error: String((error as Error).cause ?? error),
    });
    return undefined;
  }
}

/**
 * Many keys from L2 in one read, with the shared structures their values need loaded; `failed`
 * for the keys whose read failed (see `RedisTier.getManyOrFailed`).
 */
async function fetchMany<F>(
  engine: CacheEngine,
  fullKeys: readonly string[],
  failed: F,
): Promise<(Buffer | undefined | F)[]> {
  const remote = await engine.tier!.getManyOrFailed(fullKeys, failed);
  for (const bytes of remote) {
    const loading = bytes instanceof Buffer && engine.codec.prepare(bytes);
    if (loading) await loading;
  }
  return remote;
}

/** Stands for a key whose L2 read failed in a batch read (no proof that L2 held nothing). */
const NOT_READ = Symbol('not read');

/**
 * What L2 holds for each of `fullKeys`, in one read: the value's `createdAt`, null for none
 * (or one this instance cannot decode), undefined when the read failed. Compared by runs that
 * span a bus reconnect (see `FactoryRun.suspect`).
 */
export async function seenManyInL2(
  engine: CacheEngine,
  fullKeys: readonly string[],
): Promise<(number | null | undefined)[]> {
  const remote = await fetchMany(engine, fullKeys, NOT_READ);
  return remote.map((bytes, position) => {
    if (bytes === NOT_READ) return undefined;
    if (bytes === undefined) return null;
    return decodeEntry(engine, fullKeys[position]!, bytes)?.createdAt ?? null;
  });
}

/** What L2 held as a `forceFresh` call began (see {@link replacedInL2}). */
export interface ReplacedInL2 {
  /**
   * The id of the write whose value L2 holds (`CacheEntry.writeId`): null when it holds none,
   * or one without an id (the previous release's) or undecodable; undefined when the read
   * failed. What the call replaces (see `KeyLoad.replacedWriteId`).
   */
  writeId: number | null | undefined;
  /** That value, decoded: it backs the call as in grace while it is servable (see `loadThrough`). */
  entry: CacheEntry | undefined;
}

/**
 * The value L2 holds for `fullKey` and the id of its write, as a `forceFresh` call begins,
 * read without sliding it. `held` gets the bytes as stored (null: none; left undefined when the
 * read failed), which the call's run compares its write with (see `KeyLoad.l2Held`).
 */
export async function replacedInL2(
  engine: CacheEngine,
  fullKey: string,
  held?: L2Held,
): Promise<ReplacedInL2> {
  const [bytes] = await fetchMany(engine, [fullKey], NOT_READ);
  if (bytes === NOT_READ) return { writeId: undefined, entry: undefined };
  if (held) {
    held.bytes = bytes ?? null;
    held.tags = undefined;
    held.writeId = undefined;
  }
  if (bytes === undefined) return { writeId: null, entry: undefined };
  const entry = decodeEntry(engine, fullKey, bytes);
  if (held) {
    held.tags = entry?.tags;
    held.writeId = entry?.writeId;
  }
  return { writeId: entry?.writeId ?? null, entry };
}

/**
 * Decodes one value of a batch read and counts it: a fresh entry is put in L1 and returned,
 * anything else is counted `stale` or `miss` and returned as found (undefined when absent).
 */
function takeFromBatch(
  engine: CacheEngine,
  fullKey: string,
  bytes: Buffer | undefined,
  now: number,
  since: number,
): { entry: CacheEntry | undefined; fresh: boolean } {
  const entry = bytes ? decodeEntry(engine, fullKey, bytes) : undefined;
  if (entry && isFresh(entry, now)) {
    if (entry.slidingMs) slideEntry(entry, now);
    engine.metrics.request('l2', 'hit');
    if (engine.l1Enabled) engine.fill(fullKey, entry, l1Charge(bytes!, entry), since);
    if (engine.listeners.hit) engine.emitHit(fullKey, 'l2');
    return { entry, fresh: true };
  }
  engine.metrics.request('l2', entry ? 'stale' : 'miss');
  return { entry, fresh: false };
}

/** `getMany`: fresh entries from L1, then one L2 read for the rest, aligned with `fullKeys`. */
export async function getManyEntries(
  engine: CacheEngine,
  fullKeys: readonly string[],
): Promise<(CacheEntry | undefined)[]> {
  const now = engine.clock.now();
  const results: (CacheEntry | undefined)[] = fullKeys.map((key) => {
    const entry = engine.l1Get(key, now);
    const fresh = entry !== undefined && isFresh(entry, now);
    if (fresh && entry.slidingMs) slideEntry(entry, now);
    // The same labels as `get`: an entry L1 still holds past its expiry is `stale`.
    engine.metrics.request('l1', fresh ? 'hit' : entry ? 'stale' : 'miss');
    if (fresh && engine.listeners.hit) engine.emitHit(key, 'l1');
    return fresh ? entry : undefined;
  });
  if (!engine.tier) {
    if (engine.listeners.miss) {
      for (let index = 0; index < results.length; index += 1) {
        if (results[index] === undefined) engine.emitMiss(fullKeys[index]!);
      }
    }
    return results;
  }
  const missing = fullKeys.filter((_, index) => results[index] === undefined);
  if (missing.length === 0) return results;
  const since = engine.fills.epoch;
  const remote = await fetchMany(engine, missing, undefined);
  const later = engine.clock.now();
  let cursor = 0;
  for (let index = 0; index < results.length; index += 1) {
    if (results[index] !== undefined) continue;
    const key = missing[cursor]!;
    const { entry, fresh } = takeFromBatch(engine, key, remote[cursor], later, since);
    cursor += 1;
    if (fresh) results[index] = entry;
    else if (engine.listeners.miss) engine.emitMiss(key);
  }
  return results;
}

/**
 * One L2 read for `indexes` of `fullKeys` (batch read-through): fills the fresh values into
 * `results`, records entries still in grace into `stale` (when newer than the one known), and
 * returns the indexes still missing. `seen` gets, per index, what L2 held (as
 * {@link seenManyInL2} tells it), and `held` what a run's compare-and-set write compares with
 * (see `KeyLoad.l2Held`): the bytes as stored (null: none) and, when decoded, their tags (the
 * tag sets the run extends with them) and write id (whose late bus message does not supersede
 * the run); an index whose read failed is removed from both.
 */
export async function readManyFromL2<T>(
  engine: CacheEngine,
  fullKeys: readonly string[],
  indexes: readonly number[],
  results: (T | undefined)[],
  stale: Map<number, CacheEntry<T>>,
  seen?: Map<number, number | null>,
  held?: Map<number, L2Held>,
): Promise<number[]> {
  const since = engine.fills.epoch;
  const remote = await fetchMany(
    engine,
    indexes.map((index) => fullKeys[index]!),
    NOT_READ,
  );
  const now = engine.clock.now();
  const missing: number[] = [];
  indexes.forEach((index, position) => {
    const bytes = remote[position];
    const read = bytes === NOT_READ ? undefined : bytes;
    const taken = takeFromBatch(engine, fullKeys[index]!, read, now, since);
    const entry = taken.entry as CacheEntry<T> | undefined;
    if (bytes === NOT_READ) {
      seen?.delete(index);
      held?.delete(index);
    } else {
      seen?.set(index, entry?.createdAt ?? null);
      held?.set(index, { bytes: bytes ?? null, tags: entry?.tags, writeId: entry?.writeId });
    }
    if (taken.fresh) {
      results[index] = engine.out(entry!.value);
      return;
    }
    const known = stale.get(index);
    if (entry && now < entry.staleUntil && (!known || entry.createdAt > known.createdAt))
      stale.set(index, entry);
    missing.push(index);
  });
  return missing;
}

/**
 * The entry's lifetime left at `now` (see {@link KeyTtl}), or undefined once it is gone.
 */
function describeTtl(entry: CacheEntry, now: number): KeyTtl | undefined {
  if (now >= entry.staleUntil) return undefined;
  const ttlMs = Math.max(0, entry.expiresAt - now);
  const report: KeyTtl = { ttlMs, inGrace: ttlMs === 0, untilGoneMs: entry.staleUntil - now };
  if (entry.slidingMs) {
    report.slidingMs = entry.slidingMs;
    report.maxTtlMs = Math.max(0, (entry.maxExpiresAt ?? Number.POSITIVE_INFINITY) - now);
  }
  return report;
}

/** Of two copies of one key, the one that says more: the newer value, else the later expiry. */
function later(a: CacheEntry, b: CacheEntry): CacheEntry {
  if (a.createdAt !== b.createdAt) return a.createdAt > b.createdAt ? a : b;
  return a.expiresAt >= b.expiresAt ? a : b;
}

/**
 * `Cache.ttl`: L1's copy when fresh, else L2's entry (peeked: nothing slides, no hit, miss or
 * metric is counted), else L1's copy in grace. L1's copy of a value is capped by `l1.maxTtlMs`,
 * so with that option and Redis, L2 is read as well and the later expiry of the two answers
 * (a sliding entry's L1 copy slides on this instance's hits before L2's does).
 */
export async function keyTtl(engine: CacheEngine, fullKey: string): Promise<KeyTtl | undefined> {
  const now = engine.clock.now();
  const local = engine.l1.get(fullKey, now);
  const capped = engine.options.l1 !== false && engine.options.l1.maxTtlMs !== undefined;
  if (local !== undefined && now < local.expiresAt && (!engine.tier || !capped))
    return describeTtl(local, now);
  const remote = engine.tier ? await peekL2(engine, fullKey) : undefined;
  const at = engine.clock.now();
  const usable = remote !== undefined && at < remote.staleUntil ? remote : undefined;
  const chosen = usable && local ? later(usable, local) : (usable ?? local);
  return chosen === undefined ? undefined : describeTtl(chosen, at);
}

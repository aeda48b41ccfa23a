import { withDeadline } from '@noa/core';
import type { BusMessage } from './bus-message.js';
import type { CacheEngine } from './cache-engine.js';
import type { CacheEventListener, CacheEventMap } from './cache-events.js';
import { expireEntry } from './entry.js';
import { EdgePurgeError, SerializationError } from './errors.js';
import { estimateSize } from './l1/estimate-size.js';
import type { Replacement } from './l2/redis-tier.js';
import { decodeEntry } from './read-path.js';

/**
 * Invalidation from this instance: delete (by key, tag or prefix) and soft expiry (by key or
 * tag), in L1, in L2 and, through the bus, in other instances' L1. Each supersedes the factory
 * runs of the keys it reaches.
 */

/**
 * The keys of a batch call, each once (a key named twice would be deleted, reported and sent
 * to every instance twice).
 */
function distinct(keys: readonly string[]): string[] {
  return keys.length > 1 ? [...new Set(keys)] : [...keys];
}

/**
 * Runs an L2 part of an invalidation. When it throws (`onBackendError: 'throw'`) the change is
 * recorded as lost before the error goes on, as a failed publish is: it may have landed past
 * its deadline, and with no message the other instances would keep what L2 no longer holds.
 */
async function orMissed<T>(
  engine: CacheEngine,
  type: BusMessage['t'],
  names: readonly string[],
  work: () => Promise<T>,
): Promise<T> {
  try {
    return await work();
  } catch (error) {
    engine.bus?.missed(type, names);
    throw error;
  }
}

/**
 * Tells the other instances of a change whose L2 part is done; one whose L2 part failed (its
 * deadline passed, or Redis is down) is recorded as lost instead, and sent with the other lost
 * ones once Redis answers (see `InvalidationBus.missed`). Published at once, on a Redis that
 * hangs its PUBLISH cost the call a second deadline after the first.
 */
async function publishIfDone(
  engine: CacheEngine,
  type: BusMessage['t'],
  names: string[],
  l2Done: boolean,
): Promise<void> {
  if (l2Done) await engine.bus?.publish(type, names);
  else engine.bus?.missed(type, names);
}

/**
 * Deletes keys from both tiers and tells other instances (nothing at all for no keys). Returns
 * whether either tier held one of them (with Redis unavailable, whether L1 did).
 */
export async function deleteKeys(engine: CacheEngine, keys: readonly string[]): Promise<boolean> {
  if (keys.length === 0) return false;
  const fullKeys = distinct(keys);
  let found = false;
  for (const key of fullKeys) {
    if (engine.l1.delete(key)) found = true;
    engine.fills.changedKey(key);
    engine.runs.supersedeKey(key);
  }
  try {
    if (!engine.tier) return found;
    const tier = engine.tier;
    const deleted = await orMissed(engine, 'del', fullKeys, () => tier.delete(fullKeys));
    // A read of this instance sent between the L1 part and the DEL read the value, and may
    // have put it back in L1 since (or be about to): dropped again, as `clearPrefix` does.
    for (const key of fullKeys) {
      engine.l1.delete(key);
      engine.fills.changedKey(key);
    }
    await publishIfDone(engine, 'del', fullKeys, deleted !== undefined);
    return found || (deleted ?? 0) > 0;
  } finally {
    announce(engine, 'delete', fullKeys);
  }
}

/**
 * Emits `delete` or `expire` for keys once the change is done in both tiers and sent to the
 * other instances (or failed, and is recorded as lost): a listener that rewrites the key acts
 * after it. Emitted after the L1 part only, a listener's `set` was then deleted (or marked
 * stale) in L2 by the rest of the call, while its own L1 kept the value.
 */
function announce<E extends 'delete' | 'expire'>(
  engine: CacheEngine,
  event: E,
  keys: Iterable<string>,
): void {
  const listeners = engine.listeners[event] as readonly CacheEventListener<E>[] | undefined;
  if (!listeners) return;
  for (const key of keys) engine.events.emit(event, listeners, { key } as CacheEventMap[E]);
}

/**
 * Deletes every key carrying one of the tags (L1 tag index, L2 tag sets), tells other
 * instances, then purges the edge for the tags tied to it. Returns the keys removed.
 * L2 is done a page at a time (see `RedisTier.deleteTag`): each page's keys leave L1, are
 * counted and reported (`delete` events) when the page is done, so memory is bounded by a
 * page and by L1, never by the tag. A key whose L2 value no longer carries the tag (rewritten
 * without it, here or on another instance) is left alone in both tiers.
 */
export async function deleteByTags(
  engine: CacheEngine,
  tagList: readonly string[],
  named: readonly string[] = tagList,
): Promise<number> {
  if (tagList.length === 0) return 0;
  const tags = distinct(tagList);
  engine.runs.supersedeTags(tags);
  engine.fills.changedTags(tags);
  const deleted = engine.listeners.delete;
  // Bounded by L1's size: the keys its own tag index named.
  const removedLocally = new Set<string>();
  for (const tag of tags) {
    for (const key of [...(engine.tagIndex.get(tag) ?? [])]) {
      if (engine.l1.delete(key)) removedLocally.add(key);
    }
    engine.tagIndex.delete(tag);
  }
  let removed = removedLocally.size;
  /** Whether L2's part was done (or there is no L2); see the edge purge below. */
  let l2Done = true;
  if (engine.tier) {
    const tier = engine.tier;
    // Any of the tags marks a value as one to delete: a key in two of the sets is then
    // deleted (and counted) by the first page naming it, and absent for the other.
    const carriesTag = async (fullKey: string, bytes: Buffer): Promise<boolean> => {
      const loading = engine.codec.prepare(bytes);
      if (loading) await loading;
      const entry = decodeEntry(engine, fullKey, bytes);
      // A value this instance cannot decode is a miss here anyway: deleted, as before tags were checked.
      return entry === undefined || entry.tags.some((tag) => tags.includes(tag));
    };
    const onDeleted = (keys: string[]) => {
      for (const key of keys) {
        // L2 has just deleted it: L1 drops it too (its copy may be another, untagged write), and
        // so does a read of it in flight (it may have read the value, tagged or not, first).
        engine.l1.delete(key);
        engine.fills.changedKey(key);
        if (removedLocally.has(key)) continue;
        removed += 1;
        if (deleted) engine.events.emit('delete', deleted, { key });
      }
    };
    try {
      const done = await orMissed(engine, 'tag', tags, async () => {
        let all = true;
        for (const tag of tags) all = (await tier.deleteTag(tag, carriesTag, onDeleted)) && all;
        return all;
      });
      l2Done = done;
      await publishIfDone(engine, 'tag', [...tags], done);
    } catch (error) {
      announce(engine, 'delete', removedLocally);
      throw error;
    }
  }
  // L1's keys once L2's pages are done (the pages' own keys are announced page by page).
  announce(engine, 'delete', removedLocally);
  const edge = engine.options.edge;
  if (edge) {
    // The CDN knows the tags as the caller named them, not as stored in a namespace.
    const asNamed = distinct(named);
    const tied = edge.tags ? asNamed.filter((tag) => edge.tags!.includes(tag)) : [...asNamed];
    if (tied.length > 0 && !l2Done) {
      // Degraded: the tag delete reached this instance's L1 only, as a lost `delete` does. L2
      // still holds the values and every instance rereads them once the lost message is sent,
      // so a purged CDN would fetch them again; `onBackendError: 'throw'` rejects before the
      // purge for the same reason. The retry, once Redis answers, purges.
      engine.logger.warn('edge purge skipped: the tag delete did not reach Redis; call deleteByTag again', {
        tags: tied,
      });
    } else if (tied.length > 0) {
      try {
        // A purge that never settles (a CDN API without a timeout) would hold deleteByTag forever.
        await withDeadline(
          Promise.resolve().then(() => edge.purger.purgeTags(tied)),
          edge.timeoutMs,
          'edge purge',
        );
      } catch (error) {
        engine.logger.warn('edge purge failed; the cache entries are deleted', {
          tags: tied,
          error: String(error),
        });
        throw new EdgePurgeError(tied, { cause: error });
      }
    }
  }
  return removed;
}

/**
 * Marks keys stale without deleting them (soft invalidation): each instance's L1 copy and
 * the L2 value end their freshness now and keep their grace, so the next `getOrSet`
 * recomputes while callers in grace can still be served the old value. Factory runs of the
 * keys are superseded, as by a delete.
 */
export async function expireKeys(engine: CacheEngine, keys: readonly string[]): Promise<void> {
  if (keys.length === 0) return;
  const fullKeys = distinct(keys);
  const now = engine.clock.now();
  for (const key of fullKeys) {
    expireL1(engine, key, now);
    engine.fills.changedKey(key);
    engine.runs.supersedeKey(key);
  }
  try {
    if (!engine.tier) return;
    const outcomes = await orMissed(engine, 'exp', fullKeys, () => expireInL2(engine, fullKeys));
    // A read of this instance sent before L2 was rewritten read the value still fresh, and may
    // have put it in L1 since (or be about to): marked again. A key written meanwhile is left.
    expireAgainInL1(engine, fullKeys, outcomes);
    // A key another write changed meanwhile is left out: that write's own `set` message
    // refreshes other instances, and ours arriving after it would mark the new value stale.
    const published = fullKeys.filter((_, index) => outcomes[index] !== 'overwritten');
    const done = !outcomes.includes('unavailable');
    if (published.length > 0) await publishIfDone(engine, 'exp', published, done);
  } finally {
    announce(engine, 'expire', fullKeys);
  }
}

/**
 * `expire` for every key carrying one of the tags (found through the L1 tag index and the
 * L2 tag sets, no scans). Returns the number of keys marked stale in either tier. Unlike
 * `deleteByTags` it does not purge the edge: the entries still exist.
 */
export async function expireByTags(engine: CacheEngine, tagList: readonly string[]): Promise<number> {
  if (tagList.length === 0) return 0;
  const tags = distinct(tagList);
  const now = engine.clock.now();
  engine.runs.supersedeTags(tags);
  engine.fills.changedTags(tags);
  const marked = new Set<string>();
  for (const tag of tags) {
    for (const key of [...(engine.tagIndex.get(tag) ?? [])]) {
      if (expireL1(engine, key, now, tags)) marked.add(key);
    }
  }
  /** Keys marked stale in L2 that L1 did not mark (L1's are in `marked`). */
  let count = 0;
  if (engine.tier) {
    const tier = engine.tier;
    // A page of a tag's set at a time: memory is bounded by a page and by L1 (`marked` holds
    // L1's keys only), never by the tag. A key in two pages or two tags is marked by the first
    // and found already stale ('unchanged') by the next.
    const expiredInL2 = engine.listeners.expire;
    let done = true;
    await orMissed(engine, 'exptag', tags, async () => {
      for (const tag of tags) {
        const read = await tier.forEachTagPage(tag, async (keys) => {
          const outcomes = await expireInL2(engine, keys, tags);
          expireAgainInL1(engine, keys, outcomes, tags);
          if (outcomes.includes('unavailable')) done = false;
          keys.forEach((key, index) => {
            if (outcomes[index] !== 'expired' || marked.has(key)) return;
            count += 1;
            if (expiredInL2) engine.events.emit('expire', expiredInL2, { key });
          });
        });
        if (!read) done = false;
      }
    });
    await publishIfDone(engine, 'exptag', [...tags], done);
  }
  const expired = engine.listeners.expire;
  if (expired) for (const key of marked) engine.events.emit('expire', expired, { key });
  return marked.size + count;
}

/** Removes every key under `fullPrefix` from both tiers and tells other instances. */
export async function clearPrefix(engine: CacheEngine, fullPrefix: string): Promise<void> {
  clearL1(engine, fullPrefix);
  engine.runs.supersedePrefix(fullPrefix);
  try {
    if (!engine.tier) return;
    const tier = engine.tier;
    const cleared = await orMissed(engine, 'clear', [fullPrefix], () => tier.clearPrefix(fullPrefix));
    // The clear's pages take a while, and a read or write of this instance meanwhile put in L1
    // what a later page then deleted from L2: this L1 drops it again, as the others do on the
    // message (a value written meanwhile that L2 kept is only reread).
    clearL1(engine, fullPrefix);
    engine.runs.supersedePrefix(fullPrefix);
    // The root clear deleted the shared structures list: read it again before writing with it.
    if (fullPrefix === '') engine.structures?.distrust();
    await publishIfDone(engine, 'clear', [fullPrefix], cleared);
  } finally {
    // Once both tiers are clear: a listener's write under the prefix is not cleared by the call.
    const cleared = engine.listeners.clear;
    if (cleared) engine.events.emit('clear', cleared, { prefix: fullPrefix });
  }
}

/**
 * After {@link expireInL2}: marks stale again the L1 copies of the keys whose L2 value it marked,
 * and keeps the reads of them in flight from filling L1, since a read sent
 * before the rewrite found the value fresh. Keys written meanwhile ('overwritten') are left.
 */
function expireAgainInL1(
  engine: CacheEngine,
  fullKeys: readonly string[],
  outcomes: readonly L2ExpireOutcome[],
  tags?: readonly string[],
): void {
  const now = engine.clock.now();
  fullKeys.forEach((key, index) => {
    if (outcomes[index] !== 'expired') return;
    expireL1(engine, key, now, tags);
    engine.fills.changedKey(key);
  });
}

/**
 * Marks the L1 copy of a key stale (see {@link expireEntry}); drops it when it has no grace.
 * With `tags`, only an entry carrying one of them (the tag index may name a key since
 * rewritten without the tag). True when an entry was marked or dropped.
 */
export function expireL1(
  engine: CacheEngine,
  fullKey: string,
  now: number,
  tags?: readonly string[],
): boolean {
  const entry = engine.l1.get(fullKey, now);
  if (entry === undefined || (tags && !entry.tags.some((tag) => tags.includes(tag)))) return false;
  const expired = expireEntry(entry, now, engine.options.graceMs);
  if (expired === undefined) return false;
  if (expired.staleUntil <= now) engine.l1.delete(fullKey);
  // The byte size L1 was given is not kept per entry; the estimate is what `#backOff` uses too.
  else engine.l1Set(fullKey, expired, estimateSize(expired.value));
  return true;
}

/** What {@link expireInL2} did to a key's L2 value. */
type L2ExpireOutcome = 'expired' | 'unchanged' | 'overwritten' | 'unavailable';

/** Keys {@link expireInL2} reads and rewrites at once. */
const EXPIRE_BATCH_KEYS = 256;

/**
 * Marks the L2 values of keys stale for every instance, {@link EXPIRE_BATCH_KEYS} at a time:
 * one read of the batch, then its changed values written back by compare-and-set, one script
 * per chunk on a single node (`RedisTier.replaceManyIfUnchanged`). All at once, the calls of a
 * large tag queued behind each other in Redis past their own deadlines, so every read "failed"
 * and a 50,000-key tag was marked stale nowhere (and counted as errors); a read and a script
 * call per key made an expire of a 100,000-key tag cost 200,000 guarded calls, most of its CPU.
 *
 * The values are msgpack with shared structures (and maybe compressed), which Lua cannot edit,
 * so each is read, decoded, re-encoded with the new timing and written back only if Redis still
 * holds the bytes read: a write that lands in between wins (it is newer than the expire)
 * instead of being overwritten by the expired old value. A per-key "expired at" marker would
 * avoid the round trip but cost every read a second key (or a second slot on a Cluster);
 * expire is rare, reads are the hot path. An entry without grace, or one this instance cannot
 * decode, is deleted (by the same compare-and-set): a miss is what both amount to. With
 * `tags`, only a value carrying one. The reads are plain ones: an expire does not slide a
 * sliding entry, and one that a read slid meanwhile moved its timings only (the compare
 * leaves them out), so the expire still applies.
 */
async function expireInL2(
  engine: CacheEngine,
  fullKeys: readonly string[],
  tags?: readonly string[],
): Promise<L2ExpireOutcome[]> {
  const tier = engine.tier!;
  const outcomes: L2ExpireOutcome[] = [];
  for (let start = 0; start < fullKeys.length; start += EXPIRE_BATCH_KEYS) {
    const batch = fullKeys.slice(start, start + EXPIRE_BATCH_KEYS);
    const values = await tier.readValues(batch, 'expire');
    const batchOutcomes: L2ExpireOutcome[] = batch.map(() => (values ? 'unchanged' : 'unavailable'));
    const replacements: Replacement[] = [];
    const positions: number[] = [];
    for (let index = 0; values && index < batch.length; index += 1) {
      const bytes = values[index];
      if (!bytes) continue;
      const replacement = await expiredReplacement(engine, batch[index]!, bytes, tags);
      if (!replacement) continue;
      replacements.push(replacement);
      positions.push(index);
    }
    if (replacements.length > 0) {
      const replaced = await tier.replaceManyIfUnchanged(replacements, 'expire');
      positions.forEach((position, at) => {
        batchOutcomes[position] =
          replaced === undefined ? 'unavailable' : replaced[at] ? 'expired' : 'overwritten';
      });
    }
    outcomes.push(...batchOutcomes);
  }
  return outcomes;
}

/**
 * What an expire writes over `bytes`, the L2 value of `fullKey` (see {@link expireInL2}): the
 * entry re-encoded stale, nothing (a delete) for one without grace or undecodable, or undefined
 * to leave it (already stale, or not carrying one of `tags`).
 */
async function expiredReplacement(
  engine: CacheEngine,
  fullKey: string,
  bytes: Buffer,
  tags?: readonly string[],
): Promise<Replacement | undefined> {
  const loading = engine.codec.prepare(bytes);
  if (loading) await loading;
  const entry = decodeEntry(engine, fullKey, bytes);
  if (entry && tags && !entry.tags.some((tag) => tags.includes(tag))) return undefined;
  const now = engine.clock.now();
  const replacement: Replacement = { key: fullKey, expected: bytes, next: undefined };
  if (!entry) return replacement;
  const expired = expireEntry(entry, now, engine.options.graceMs);
  if (expired === undefined) return undefined;
  if (expired.staleUntil > now) {
    try {
      replacement.next = engine.codec.encode(expired);
      replacement.ttlMs = Number.isFinite(expired.staleUntil) ? expired.staleUntil - now : undefined;
    } catch (error) {
      if (!(error instanceof SerializationError)) throw error;
      engine.metrics.error('l2', 'encode');
    }
  }
  return replacement;
}

/**
 * Drops every L1 key under `fullPrefix` (all of L1 for the root), and keeps the L2 reads of
 * them in flight from putting back what they read.
 */
export function clearL1(engine: CacheEngine, fullPrefix: string): void {
  engine.fills.changedPrefix(fullPrefix);
  if (fullPrefix === '') {
    engine.l1.clear();
    return;
  }
  for (const key of [...engine.l1.keys()]) if (key.startsWith(fullPrefix)) engine.l1.delete(key);
}

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { whenRedisMayEvict } from '@noa/core';
import { slidingFrameBytes } from '../serialization/entry-codec.js';
import type { IoRedisClient } from './ioredis-client.js';
import { isCluster } from './ioredis-client.js';
import type { RedisGuard } from './redis-guard.js';
import { PRUNE_SAMPLE, tagsToPrune } from './tag-pruning.js';
import { type BatchSlot, TickBatcher } from './tick-batcher.js';

/**
 * A Lua script read once from `./lua/<name>.lua` (after the files of `parts`, which define what
 * it shares with other scripts), run with EVALSHA (EVAL after a NOSCRIPT).
 */
interface Script {
  source: string;
  sha: string;
}
function script(name: string, parts: readonly string[] = []): Script {
  const read = (file: string) => readFileSync(new URL(`./lua/${file}.lua`, import.meta.url), 'utf8');
  const source = [...parts, name].map(read).join('\n');
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}
const releaseLeaseScript = script('release-lease');
const takeForcedLeaseScript = script('take-forced-lease');
const structuresLoadScript = script('structures-load');
const structuresAppendScript = script('structures-append');
const replaceIfUnchangedScript = script('replace-if-unchanged', ['compare-and-set']);
const replaceManyIfUnchangedScript = script('replace-many-if-unchanged', ['compare-and-set']);
const writeIfUnchangedScript = script('write-if-unchanged', ['compare-and-set']);
const extendIfUnchangedScript = script('extend-if-unchanged', ['compare-and-set']);
const getSlidingScript = script('get-sliding', ['slide-frame']);
const slideScript = script('slide', ['slide-frame']);
const pruneTagScript = script('prune-tag');
/** The header byte of a sliding entry's frame (format 3, see entry-codec.ts). */
const slidingFrameHeader = 0x30;
/** A frame's length: the header and four doubles. */
const slidingFrameLength = 33;

interface PendingWrite {
  key: string;
  bytes: Buffer;
  ttlMs: number | undefined;
  tags: readonly string[];
  /** How long the tag sets must keep naming the key (ms; undefined: as long as it lives). */
  tagTtlMs: number | undefined;
}

/** A factory run's write by compare-and-set (see {@link RedisTier.setIfUnchanged}). */
interface CasWrite extends PendingWrite {
  /** The bytes read before (null: no value). */
  expected: Buffer | null;
  /** The writing run's lease token: not written once another holder has the lease. */
  leaseToken: string | undefined;
}

/** The write commands of a connection or a pipeline (a pipeline returns itself, not a promise). */
interface WriteTarget {
  set(key: string, value: Buffer): unknown;
  set(key: string, value: Buffer, px: 'PX', ms: number): unknown;
  sadd(key: string, member: string): unknown;
  pexpire(key: string, ms: number, mode: 'NX' | 'GT'): unknown;
}

/**
 * The expiry a tag set gets for a member that never expires (~100 years). Not PERSIST: a set
 * without expiry looks new to `PEXPIRE … NX`, so the next short-lived member would give the
 * whole set its short expiry, and `deleteByTag` would then miss the members that never expire.
 */
const TAG_SET_FOREVER_MS = 100 * 365 * 24 * 3_600_000;

/** What a {@link RedisTier} tells its cache of the pruning of tag sets (see `RedisTier.#pruneTag`). */
export interface TagPruneReport {
  /** A prune of `tag`'s set sampled `sampled` members and removed `removed` dead ones. */
  pruned(tag: string, sampled: number, removed: number): void;
  /** Redis refused a prune's command (an ACL without SRANDMEMBER): this tier prunes no more. */
  refused(error: unknown): void;
}

/** Average encoded size from which a batch of writes goes out as separate commands. */
const DIRECT_WRITE_BYTES = 4 * 1024;

/** Result of trying to take a key's compute lease. */
export type LeaseResult = 'acquired' | 'busy' | 'unavailable';

/**
 * What a forced run's lease token starts with (see {@link RedisTier.takeForcedLease}): a lease
 * holding it is a `forceFresh` run's, which later forced calls wait for rather than replace.
 */
export const forcedLeasePrefix = 'forced:';

/** What follows the prefix in the Redis key of every cache value (see {@link RedisTier.dataKey}). */
export const dataKeyMarker = 'v:';

/** The most keys one batched MGET carries (see the RedisTier constructor). */
export const readBatchMaxKeys = 16;

/** A batched read's keys when its MGET failed: each caller maps it to its own `failed` (see `RedisTier.getOrFailed`). */
const READ_FAILED = Symbol('read failed');

/** A batched read's outcome for one key: its bytes, undefined when absent, or failed. */
export type BatchedRead = Buffer | undefined | typeof READ_FAILED;

/** The value of a {@link RedisTier.joinRead} read: undefined when absent or the read failed (as `get`). */
export function readAt(results: readonly BatchedRead[], index: number): Buffer | undefined {
  const bytes = results[index];
  return bytes === READ_FAILED ? undefined : bytes;
}

/**
 * The most keys one MGET or UNLINK of a batch call (`getMany`, `deleteMany`) names: a larger
 * batch goes out as several commands, sent together under the call's one deadline, as the one
 * command was. Their keys are spread into the client call as arguments, and past ~125,000 of
 * them (Node 24) the spread overflows the stack: the call failed before anything was sent, so
 * `getMany` read nothing and `deleteMany` deleted nothing in L2, both resolving (degraded).
 */
const KEYS_PER_COMMAND = 10_000;

/**
 * Keys a single node's `getMany` reads under one deadline: a larger call is read chunk after
 * chunk (see `#readChunks`). 1,024 values of 1 KB are about 1 MB, a few milliseconds.
 */
const READ_CHUNK_KEYS = 1_024;

/** Members of a tag's set read per SSCAN page: what a tag invalidation holds at once. */
const tagPageKeys = 1_000;

/**
 * Values a tag delete reads, checks and deletes at once: 250 values of 10 KB are 2.5 MB, one
 * read under one deadline.
 */
const tagCheckKeys = 250;

/** Most keys of one compare-and-set script call (see {@link RedisTier.replaceManyIfUnchanged}). */
const CAS_SCRIPT_KEYS = 256;
/** Bytes of values read above which a compare-and-set script call takes no more keys. */
const CAS_SCRIPT_BYTES = 1 << 20;

/**
 * A value to replace by compare-and-set: `next` (undefined: delete it) only if the key still
 * holds `expected`, the bytes read before (a sliding entry's frame of timings aside).
 */
export interface Replacement {
  key: string;
  expected: Buffer;
  next: Buffer | undefined;
  /** Physical TTL of `next` (ms; undefined: none). */
  ttlMs?: number | undefined;
}

/**
 * What the tiers of one client (the caches and libraries that share it) agree on so that Redis
 * sees one key's commands in the order they were called: at most one tier at a time gathers
 * batched writes, `batching`. Each tier batches its own plain and compare-and-set writes of a
 * turn, so with two tiers gathering at once a delete sent by one reached Redis before the other's
 * earlier set, which then brought the value back, and the later of two sets of one key could
 * land first. A tier that starts to batch sends the batches the other one gathered; a command
 * sent at once (a delete, a tag delete, a clear, a compare-and-set, a write of an unbatched
 * tier) sends them first, and so does a read (a read batch, full or at the end of the turn, a
 * getMany, an unbatched GET): a cache read another's write called before it only once that
 * write's batch went out at the end of the turn. One tier alone keeps its batches as before:
 * the check is one comparison per write or read.
 */
export interface ClientWriteOrder {
  batching: RedisTier | undefined;
}
const writeOrders = new WeakMap<IoRedisClient, ClientWriteOrder>();

/** The write order shared by the tiers of `client` (exported for tests). */
export function writeOrderOf(client: IoRedisClient): ClientWriteOrder {
  let order = writeOrders.get(client);
  if (order === undefined) {
    order = { batching: undefined };
    writeOrders.set(client, order);
  }
  return order;
}

/** Thrown inside {@link RedisTier.deleteTag}'s pages to stop at a failed one. */
const pageFailed = new Error('tag page failed');

/**
 * The Redis tier: raw encoded values, tag sets and compute leases, every call guarded
 * (deadline + breaker). Cluster-safe: no command touches two keys that may live in different
 * slots (multi-key reads fan out per key on a cluster; on a single node they use MGET).
 * On a single node, reads and writes issued in the same event-loop turn are coalesced into
 * MGETs of up to {@link readBatchMaxKeys} keys and one pipeline (`batching`), each under one
 * deadline and one breaker call.
 */
export class RedisTier {
  readonly client: IoRedisClient;
  readonly #guard: RedisGuard;
  readonly #prefix: string;
  /** `<prefix>v:`: every cache value lives under it (see {@link RedisTier.dataKey}). */
  readonly #dataPrefix: string;
  readonly #cluster: boolean;
  /**
   * On a Cluster, per tag, the tagged writes of this tier whose SADD is not sent yet (it waits
   * for the value's SET, see `#sendWrite`): a tag delete waits for them before it scans the set.
   */
  readonly #tagWritesInFlight = new Map<string, Set<Promise<unknown>>>();
  readonly #reads: TickBatcher<string, BatchedRead> | undefined;
  readonly #writes: TickBatcher<PendingWrite, boolean> | undefined;
  readonly #casWrites: TickBatcher<CasWrite, boolean | undefined> | undefined;
  /** Shared with every tier on this client (see {@link ClientWriteOrder}). */
  readonly #writeOrder: ClientWriteOrder;
  /** The cache's clock, which slides read sliding entries (freshness is the caller's call). */
  readonly #clock: () => number;
  /** Every read runs `get-sliding.lua` instead of GET/MGET (a cache with a `slidingTtlMs`). */
  readonly #slidingReads: boolean;
  readonly #pruneReport: TagPruneReport | undefined;
  /** Tags whose set this tier is pruning: one prune per tag at a time (a `setMany` of one tag). */
  readonly #pruning = new Set<string>();
  /** Redis refused a prune's command: tag sets are not pruned (they grow as before). */
  #pruneRefused = false;

  /**
   * With `slidingReads`, every read runs `get-sliding.lua` (a GET that also extends a sliding
   * entry in the same call) instead of GET/MGET; the cache asks for it when it has a
   * `slidingTtlMs`, so most of its entries slide. Without it, reads are plain GET/MGET, and
   * the rare entry written with its own `slidingTtlMs` is slid by a second call after the read
   * (`slide.lua`, not awaited): only such entries cost it.
   */
  constructor(
    client: IoRedisClient,
    prefix: string,
    guard: RedisGuard,
    clock: () => number,
    batching = true,
    slidingReads = false,
    pruneReport?: TagPruneReport,
  ) {
    this.client = client;
    this.#pruneReport = pruneReport;
    this.#clock = clock;
    this.#slidingReads = slidingReads;
    this.#guard = guard;
    guard.sendOnlyWhenConnected(client);
    this.#prefix = prefix;
    this.#dataPrefix = `${prefix}${dataKeyMarker}`;
    this.#cluster = isCluster(client);
    this.#writeOrder = writeOrderOf(client);
    if (batching && !this.#cluster) {
      // Reads go out as MGETs of at most 16 keys: with one MGET per turn, Redis and this process
      // take turns waiting for each other; with several in flight, Redis answers one while we
      // decode the last. Measured on 32 concurrent hits (2026-12-04, small/10 KB/100 KB values):
      // 16 keys per MGET gave 1.1–1.4× the reads per second of one 32-key MGET.
      // A batch serves `get` calls: its metrics and degraded counts say `get`, not `get_many`.
      this.#reads = new TickBatcher((keys) => this.#readMany(keys, READ_FAILED, 'get'), readBatchMaxKeys);
      // Writes flush every 16 KiB so Redis ingests a batch while the next is being encoded.
      this.#writes = new TickBatcher((writes) => this.#writeBatch(writes), 256, 16 * 1024);
      // Factory runs' compare-and-set writes of one turn (a getOrSetMany's values, runs ending
      // together) go out as one script call per chunk, as an expire's replacements do.
      this.#casWrites = new TickBatcher(
        (writes) => this.#writeIfUnchanged(writes),
        CAS_SCRIPT_KEYS,
        CAS_SCRIPT_BYTES,
      );
    }
  }

  /**
   * Warns (once) when Redis may evict this cache's tag sets and the cache writes tags: an evicted
   * tag set leaves the values it named out of reach of `deleteByTag`/`expireByTag`. The policy is
   * read once the client is ready (core's `whenRedisMayEvict`); the warning comes with the first
   * tagged write, or with the policy if tags were written before it came.
   */
  warnIfTagsMayBeEvicted(warn: (policy: string) => void): void {
    this.#warnEviction = warn;
    whenRedisMayEvict(this.client, (policy) => {
      this.#evictingPolicy = policy;
      if (this.#wroteTags) this.#tagsMayBeEvicted();
    });
  }
  #warnEviction: ((policy: string) => void) | undefined;
  #evictingPolicy: string | undefined;
  #wroteTags = false;

  /** Notes a tagged write (see {@link warnIfTagsMayBeEvicted}). */
  #tagsWritten(): void {
    if (this.#wroteTags) return;
    this.#wroteTags = true;
    this.#tagsMayBeEvicted();
  }

  #tagsMayBeEvicted(): void {
    if (this.#evictingPolicy === undefined || this.#warnEviction === undefined) return;
    const warn = this.#warnEviction;
    this.#warnEviction = undefined;
    warn(this.#evictingPolicy);
  }

  /**
   * Whether Redis as a whole answers (see `RedisGuard.healthy`): a hint for calls that are
   * optional, never the outcome of a given call (see {@link getOrFailed}).
   */
  get healthy(): boolean {
    return this.#guard.healthy;
  }

  /**
   * On a Cluster, whether a call failed as its master's alone (others answering) within core's
   * `partAnswerWindowMs` (see `RedisGuard.partFailing`); always false on one node.
   */
  get partFailing(): boolean {
    return this.#guard.partFailing;
  }

  /** The last Redis error until a call succeeds (see `RedisGuard.lastError`). */
  get lastError(): unknown {
    return this.#guard.lastError;
  }

  /** The guard's breaker state. */
  get state(): 'closed' | 'open' | 'half-open' {
    return this.#guard.state;
  }

  /**
   * Redis key of a cache key: `<prefix>v:<key>`. Internal keys (`<prefix>__tag:…`,
   * `__lease:…`, `__structures`, `__hot`) never start with `v:`, so no cache key can collide
   * with them, and a clear can SCAN values alone. A fixed marker rather than escaping costs
   * nothing per operation (one precomputed prefix) and adds no braces, so a key's hash slot
   * is still chosen by its own `{…}` part (or the prefix's), as are its lease's and its tag
   * sets' when they carry the same hash tag.
   */
  dataKey(key: string): string {
    return this.#dataPrefix + key;
  }

  /** Redis key of a tag's key set. */
  tagKey(tag: string): string {
    return `${this.#prefix}__tag:${tag}`;
  }

  /** Redis key of a cache key's compute lease. */
  leaseKey(key: string): string {
    return `${this.#prefix}__lease:${key}`;
  }

  /** Reads one encoded value (undefined when absent or Redis is unavailable). */
  get(key: string): Promise<Buffer | undefined> {
    return this.getOrFailed(key, undefined);
  }

  /**
   * {@link get} that tells a failed read (timeout, error, breaker open, the key's master
   * failing on a Cluster) from an absent value: `failed` when this very read failed. The
   * outcome belongs to the call: {@link healthy}, read after it, may already say what another
   * call did since (another request's, another master's), and a failed read taken for "absent"
   * let a run spanning a reconnect cache its value over a delete the bus lost.
   */
  getOrFailed<F>(key: string, failed: F): Promise<Buffer | undefined | F> {
    if (this.#reads) {
      const read = this.#reads.add(key);
      return read.then((bytes) => (bytes === READ_FAILED ? failed : bytes));
    }
    return this.#getOne(key, failed);
  }

  /**
   * {@link get} joined to the turn's read batch without a promise of its own (see
   * `TickBatcher.join`): once `results` settle, {@link readAt} takes its value. Undefined when
   * reads are not batched (a Cluster): use {@link get}. For `Cache.get`'s L2 hit, where the
   * promise, its resolvers and the `.then` per read were a seventh of what a small hit
   * allocated: with it, 3.5 -> 3.0 KB per get and 1.05-1.15x the reads per CPU-second
   * (bench/l2-hit.ts, ~200-byte values, `l1: false`, medians of four alternating A/B runs,
   * 2026-12-07). The earlier attempt, the `.then` alone folded into the batcher, gained nothing.
   */
  joinRead(key: string): BatchSlot<BatchedRead> | undefined {
    return this.#reads?.join(key);
  }

  /** One guarded GET (its own deadline and breaker call); `failed` when it fails. */
  #getOne<F>(key: string, failed: F): Promise<Buffer | undefined | F> {
    this.#writesFirst();
    return this.#readOne(key, failed);
  }

  /** {@link #getOne} for a caller that has sent the gathered writes already (see {@link #writesFirst}). */
  #readOne<F>(key: string, failed: F): Promise<Buffer | undefined | F> {
    return this.#guard.run<Buffer | undefined | F>('get', failed, async () => {
      const redisKey = this.dataKey(key);
      if (this.#slidingReads) return this.#readSliding(redisKey, this.#clock());
      const value = (await this.client.getBuffer(redisKey)) ?? undefined;
      if (value !== undefined && isSlidingFrame(value)) this.#slide(redisKey);
      return value;
    });
  }

  /**
   * Reads one encoded value as stored, sliding nothing (a plain GET, never `get-sliding.lua`
   * nor a slide after it): `ttl`'s look at an entry is not a read of it. Undefined when absent
   * or Redis is unavailable.
   */
  peek(key: string): Promise<Buffer | undefined> {
    this.#writesFirst();
    return this.#guard.run<Buffer | undefined>('get', undefined, async () => {
      return (await this.client.getBuffer(this.dataKey(key))) ?? undefined;
    });
  }

  /** Reads many encoded values, in order. */
  getMany(keys: readonly string[]): Promise<(Buffer | undefined)[]> {
    return this.#readMany(keys, undefined, 'get_many');
  }

  /**
   * {@link getMany} that tells a failed read (timeout, error, breaker open) from an absent
   * value: `failed` stands for the keys that could not be read. On a Cluster that is per key
   * (one stalled master fails its keys only); on one node, all or none. For callers to whom
   * "not read" and "nothing there" mean different things (a run that spans a bus reconnect).
   */
  getManyOrFailed<F>(keys: readonly string[], failed: F): Promise<(Buffer | undefined | F)[]> {
    return this.#readMany(keys, failed, 'get_many');
  }

  /** `operation`: the metrics label of a single node's MGET (a Cluster's GETs are each a `get`). */
  #readMany<F>(
    keys: readonly string[],
    failed: F,
    operation: 'get' | 'get_many',
  ): Promise<(Buffer | undefined | F)[]> {
    if (keys.length === 0) return Promise.resolve([]);
    // A read sent now (a full read batch, a batch begun before a write, a getMany) must not
    // overtake a write gathered earlier in this turn, here or by another tier of the client.
    this.#writesFirst();
    // On a Cluster the keys live on several masters: each key is read under its own deadline, so
    // one stalled master costs only its keys, not the values that the healthy masters hold. The
    // writes went out above, before any of these GETs: not looked for again per key.
    if (this.#cluster) return Promise.all(keys.map((key) => this.#readOne(key, failed)));
    if (keys.length <= READ_CHUNK_KEYS) return this.#readChunk(keys, failed, operation);
    return this.#readChunks(keys, failed, operation);
  }

  /**
   * A single node's read of more than {@link READ_CHUNK_KEYS} keys: chunk after chunk, each under
   * its own deadline, as `setMany` writes. Under one deadline for the whole call, a `getMany` of
   * 300,000 small values with the default 500 ms came back all misses while each part of it was
   * answered in milliseconds. A chunk that fails (its deadline, an error, the breaker open) is
   * `failed` for its keys only; the next chunk is tried (the breaker answers it at once if open).
   */
  async #readChunks<F>(
    keys: readonly string[],
    failed: F,
    operation: 'get' | 'get_many',
  ): Promise<(Buffer | undefined | F)[]> {
    const read: (Buffer | undefined | F)[] = [];
    for (let start = 0; start < keys.length; start += READ_CHUNK_KEYS) {
      const chunk = await this.#readChunk(keys.slice(start, start + READ_CHUNK_KEYS), failed, operation);
      for (const value of chunk) read.push(value);
    }
    return read;
  }

  /** One guarded read of `keys` on a single node (an MGET, or sliding scripts). */
  #readChunk<F>(
    keys: readonly string[],
    failed: F,
    operation: 'get' | 'get_many',
  ): Promise<(Buffer | undefined | F)[]> {
    const empty: (Buffer | undefined | F)[] = keys.map(() => failed);
    return this.#guard.run<(Buffer | undefined | F)[]>(operation, empty, async () => {
      const redisKeys = keys.map((key) => this.dataKey(key));
      if (this.#slidingReads) {
        // One script call per key, all sent at once: one round trip, as the MGET.
        const now = this.#clock();
        return Promise.all(redisKeys.map((key) => this.#readSliding(key, now)));
      }
      const values = await this.#mget(redisKeys);
      const read: (Buffer | undefined)[] = new Array(values.length);
      for (let index = 0; index < values.length; index += 1) {
        const value = values[index] ?? undefined;
        if (value !== undefined && isSlidingFrame(value)) this.#slide(redisKeys[index]!);
        read[index] = value;
      }
      return read;
    });
  }

  /**
   * Slides a sliding entry that a plain read returned (see the constructor), in the background:
   * the read is answered already, and a failure only leaves L2's copy its older window.
   */
  #slide(redisKey: string): void {
    const now = String(this.#clock());
    // The guard logs and counts a failure; with onBackendError 'throw' it rejects, and nobody
    // awaits this call to be told.
    this.#guard
      .run('slide', undefined, async () => {
        await this.#eval(slideScript, redisKey, [now]);
      })
      .catch(() => {});
  }

  /**
   * Writes one encoded value with a physical TTL (ms; undefined keeps it until deleted) and
   * adds it to its tags' key sets, which live at least `tagTtlMs` (ms; undefined: forever). A
   * sliding value passes its bound there, not its `ttlMs`: reads move its TTL
   * (`get-sliding.lua`) but not its sets'. Returns false when Redis was unavailable.
   */
  set(
    key: string,
    bytes: Buffer,
    ttlMs: number | undefined,
    tags: readonly string[],
    tagTtlMs: number | undefined,
  ): Promise<boolean> {
    const write: PendingWrite = { key, bytes, ttlMs, tags, tagTtlMs };
    if (this.#writes) {
      this.#batchAfterOthers();
      return this.#mayPrune(tags, this.#writes.add(write, bytes.length));
    }
    this.#writesFirst();
    return this.#mayPrune(
      tags,
      this.#guard.run('set', false, async () => {
        await this.#awaitWrite(write, this.#sendWrite(this.client, write));
        return true;
      }),
    );
  }

  /**
   * {@link set}, but only if the key still holds `expected` (the bytes read before, a sliding
   * entry's frame of timings aside; null: no value), by compare-and-set on the key's own node
   * (`compare-and-set.lua`): a factory run's write, which must not replace a change another
   * instance made while it ran (see `runFactory`). On a single node the value and its tag sets
   * are one step (`write-if-unchanged.lua`): a write that lost adds the key to no tag set; the
   * writes of one turn go out as one script call per chunk ({@link CAS_SCRIPT_KEYS} keys, about
   * {@link CAS_SCRIPT_BYTES}), so a `getOrSetMany` of many keys costs one call, not one per key.
   * On a Cluster one script call per key, its tag sets added to once it is written. With
   * `leaseToken` (a run holding the key's lease) it is not written once another holder has
   * that lease (a forced run took it over, see {@link takeForcedLease}): checked in the same
   * script on a single node, by a GET sent first on a Cluster. Returns whether it was written
   * (false: the key changed meanwhile, or the lease was taken over), undefined when Redis was
   * unavailable.
   */
  setIfUnchanged(
    key: string,
    expected: Buffer | null,
    bytes: Buffer,
    ttlMs: number | undefined,
    tags: readonly string[],
    tagTtlMs: number | undefined,
    leaseToken?: string,
  ): Promise<boolean | undefined> {
    const write: CasWrite = { key, expected, bytes, ttlMs, tags, tagTtlMs, leaseToken };
    if (this.#casWrites) {
      // The plain writes of this turn first (see #writesFirst); not the compare-and-set batch
      // this write joins.
      this.#batchAfterOthers();
      this.#writes?.flush();
      return this.#mayPrune(tags, this.#casWrites.add(write, bytes.length + (expected?.length ?? 0)));
    }
    this.#writesFirst();
    if (!this.#cluster) {
      return this.#mayPrune(
        tags,
        this.#guard.run('set', undefined as boolean | undefined, async () => {
          const [written] = await this.#casScript([write]);
          return written;
        }),
      );
    }
    // On a Cluster a value and its tag sets live in other slots, so no script holds both: the
    // tag sets are added to once the value is written, as a `set` sends its SET before its SADD
    // (the order `deleteTag`'s restore and `#pruneTag` rely on). Added to first, a write that
    // lost left the key a member of sets its value never carried.
    const written = this.#guard.run('set', undefined as boolean | undefined, async () => {
      const { digest, frame } = casDigest(expected);
      if (leaseToken !== undefined) {
        // The lease is read first (one more round trip), even when a hash tag puts it in the
        // value's slot: a script naming both keys is refused (TRYAGAIN) while that slot moves
        // between masters and only one of them exists on either. A takeover between the GET
        // and the write still loses to this write, in that round trip only.
        const holder = await this.client.get(this.leaseKey(key));
        if (holder !== null && holder !== leaseToken) return false;
      }
      const replaced = await this.#eval(replaceIfUnchangedScript, this.dataKey(key), [
        digest,
        bytes,
        physicalMs(ttlMs),
        String(frame),
      ]);
      if (replaced !== 1) return false;
      if (tags.length === 0) return true;
      this.#tagsWritten();
      const tagSetMs = tagSetExpiry(tagTtlMs);
      const settled = await Promise.allSettled(
        tags.flatMap((tag) => {
          const tagKey = this.tagKey(tag);
          return [
            this.client.sadd(tagKey, key),
            this.client.pexpire(tagKey, tagSetMs, 'NX'),
            this.client.pexpire(tagKey, tagSetMs, 'GT'),
          ];
        }),
      );
      // A tag command refused (out of memory) after the value was written: drop the value
      // rather than leave it unnamed by its tag set (see #dropIfUntagged).
      const errors = settled.map((reply) => (reply.status === 'rejected' ? (reply.reason as unknown) : null));
      this.#dropIfUntagged(write, [null, ...errors]);
      const failed = settled.find((reply) => reply.status === 'rejected');
      if (failed !== undefined) throw failed.reason;
      return true;
    });
    if (tags.length > 0) this.#noteTagWrite(tags, written);
    return this.#mayPrune(tags, written);
  }

  /**
   * Notes a Cluster write of `tags` whose SADDs go once `sent` settles (see
   * {@link #tagWritesInFlight}).
   */
  #noteTagWrite(tags: readonly string[], sent: Promise<unknown>): void {
    for (const tag of tags) {
      let pending = this.#tagWritesInFlight.get(tag);
      if (pending === undefined) {
        pending = new Set();
        this.#tagWritesInFlight.set(tag, pending);
      }
      pending.add(sent);
    }
    const done = () => {
      for (const tag of tags) {
        const pending = this.#tagWritesInFlight.get(tag);
        if (pending === undefined) continue;
        pending.delete(sent);
        if (pending.size === 0) this.#tagWritesInFlight.delete(tag);
      }
    };
    sent.then(done, done);
  }

  /**
   * Waits (one guarded operation, so within the operation deadline) until this tier's tagged
   * writes of `tag` in flight have sent their SADDs: on a Cluster a write sends them once its SET
   * is answered, and a tag delete that scanned the set before would miss a value landing after it
   * (on one node the SADD goes with the SET, before any later command). False when Redis did not
   * answer in time.
   */
  async #tagWritesSent(tag: string, operation: 'tag_members' | 'delete_tag'): Promise<boolean> {
    const pending = this.#tagWritesInFlight.get(tag);
    if (pending === undefined) return true;
    // Settled in the order registered: each write's SADD (chained on its SET first) is sent
    // before this wait resumes, so the scan that follows reaches the set's master after it.
    const writes = [...pending];
    return this.#guard.run(operation, false, async () => {
      await Promise.allSettled(writes);
      return true;
    });
  }

  /**
   * Once `written` resolves true, prunes each of `tags`' sets with `PRUNE_CHANCE` (see
   * {@link #pruneTag}). Returns `written` itself: the write's outcome is the caller's, and
   * nothing is added to the write's path unless a prune is drawn.
   */
  #mayPrune<T>(tags: readonly string[], written: Promise<T>): Promise<T> {
    if (tags.length === 0 || this.#pruneRefused) return written;
    const due = tagsToPrune(tags);
    if (due === undefined) return written;
    // Only after a write that landed: one that failed (or lost its compare-and-set) says Redis
    // is failing or the key is contended, and a prune then would only add a failure to count.
    written.then(
      (outcome) => {
        if (outcome === true) for (const tag of due) this.#pruneTag(tag);
      },
      () => {},
    );
    return written;
  }

  /**
   * Removes from `tag`'s set some of the members whose value is gone (expired, evicted, deleted
   * one by one): a set names every key written with its tag, and lives as long as its
   * longest-lived member, so without this a tag written to all the time (on keys that come and
   * go) named more and more dead keys, and `deleteByTag` read each. A random sample of
   * {@link PRUNE_SAMPLE} members is checked (see `PRUNE_CHANCE` in tag-pruning.ts for the bound).
   * Background work: one guarded operation (`prune_tag`, counted and logged as any), whose
   * failure only leaves the dead members for a later prune. Skipped while the breaker is not
   * closed, and while this tier prunes the same tag already. The stored layout is unchanged
   * (the same sets, members and expiries): an instance of an earlier release shares them.
   */
  #pruneTag(tag: string): void {
    if (
      this.#pruneRefused ||
      this.#pruning.has(tag) ||
      this.#guard.state !== 'closed' ||
      !this.#guard.healthy
    )
      return;
    this.#pruning.add(tag);
    const tagKey = this.tagKey(tag);
    this.#guard
      .run('prune_tag', undefined as { sampled: number; removed: number } | undefined, async () => {
        try {
          return this.#cluster ? await this.#pruneApart(tagKey) : await this.#pruneAtOnce(tagKey);
        } catch (error) {
          if (String((error as Error).message).startsWith('NOPERM') && !this.#pruneRefused) {
            this.#pruneRefused = true;
            this.#pruneReport?.refused(error);
          }
          throw error;
        }
      })
      .then((outcome) => {
        if (outcome !== undefined) this.#pruneReport?.pruned(tag, outcome.sampled, outcome.removed);
      })
      // With onBackendError 'throw' the guard rejects, and nobody awaits this call to be told.
      .catch(() => {})
      .finally(() => this.#pruning.delete(tag));
  }

  /**
   * A single node's prune: the sample (SRANDMEMBER), then `prune-tag.lua`, which checks each
   * member's value and removes the dead ones in one step (see there for why no value written
   * meanwhile leaves its set). Two round trips.
   */
  async #pruneAtOnce(tagKey: string): Promise<{ sampled: number; removed: number }> {
    const members = await this.client.srandmember(tagKey, PRUNE_SAMPLE);
    if (members.length === 0) return { sampled: 0, removed: 0 };
    const keys = [tagKey, ...members.map((member) => this.dataKey(member))];
    const removed = (await this.#evalKeys(pruneTagScript, keys, members)) as number;
    return { sampled: members.length, removed };
  }

  /**
   * A Cluster's prune: the set and the values live in other slots, so no script holds both.
   * Sampled members whose value is absent are removed (SREM), THEN checked again, and those whose
   * value exists now are added back (with the set given the expiry of a member that never
   * expires if the SREM emptied it, as `#restoreTagged` does). Why no tagged value ends up
   * outside its set: a writer sends its SET, and its SADD once the SET is answered (`#sendWrite`,
   * `setIfUnchanged`). If its SADD lands after our SREM, the SADD puts the member back. If it
   * lands before our SREM, its SET landed before that too, so before our second check, which
   * then sees the value and adds the member back. A write that lands entirely after the second
   * check adds the member itself. The whole sequence is one chain: past its deadline (reported
   * as a failure) it still runs to the end when Redis answers; only a command that fails
   * (connection lost between the SREM and the re-check) can leave a value rewritten in those
   * round trips out of its set, the window `deleteByTag`'s restore has too. Four round trips.
   */
  async #pruneApart(tagKey: string): Promise<{ sampled: number; removed: number }> {
    const members = await this.client.srandmember(tagKey, PRUNE_SAMPLE);
    const absent = async (candidates: readonly string[]) => {
      const exists = await Promise.all(candidates.map((member) => this.client.exists(this.dataKey(member))));
      return candidates.filter((_, index) => exists[index] === 0);
    };
    const dead = await absent(members);
    if (dead.length === 0) return { sampled: members.length, removed: 0 };
    const removed = await this.client.srem(tagKey, ...dead);
    const stillDead = new Set(await absent(dead));
    const back = dead.filter((member) => !stillDead.has(member));
    if (back.length > 0) {
      await this.client.sadd(tagKey, ...back);
      await this.client.pexpire(tagKey, TAG_SET_FOREVER_MS, 'NX');
    }
    return { sampled: members.length, removed: Math.max(0, removed - back.length) };
  }

  /** One guarded call of {@link #casScript} for a batch of {@link setIfUnchanged} (single node). */
  #writeIfUnchanged(writes: CasWrite[]): Promise<(boolean | undefined)[]> {
    const failed = writes.map(() => undefined);
    return this.#guard.run<(boolean | undefined)[]>('set', failed, () => this.#casScript(writes));
  }

  /** `write-if-unchanged.lua` over `writes` (a single node's, or keys of one slot). */
  async #casScript(writes: readonly CasWrite[]): Promise<boolean[]> {
    const keys: string[] = [];
    const args: (string | Buffer)[] = [];
    for (const write of writes) {
      const { digest, frame } = casDigest(write.expected);
      keys.push(this.dataKey(write.key));
      if (write.tags.length > 0) this.#tagsWritten();
      for (const tag of write.tags) keys.push(this.tagKey(tag));
      if (write.leaseToken !== undefined) keys.push(this.leaseKey(write.key));
      args.push(
        String(write.tags.length),
        digest,
        write.bytes,
        physicalMs(write.ttlMs),
        String(frame),
        write.key,
        String(tagSetExpiry(write.tagTtlMs)),
        write.leaseToken ?? '',
      );
    }
    const reply = (await this.#evalKeys(writeIfUnchangedScript, keys, args)) as number[];
    return reply.map((written) => written === 1);
  }

  /** Writes a batch: small values in one pipeline, large ones as separate commands (single node only). */
  #writeBatch(writes: PendingWrite[]): Promise<boolean[]> {
    const failed = writes.map(() => false);
    let bytes = 0;
    for (const write of writes) bytes += write.bytes.length;
    if (bytes >= writes.length * DIRECT_WRITE_BYTES) {
      // Large values: separate commands on the connection, in order, each written to the
      // socket as is. A pipeline would first copy them all into one buffer (Buffer.concat),
      // which for large values costs more than the syscalls it saves (measured: ~30% more
      // CPU per 10 KB write).
      return this.#guard.run('set', failed, async () => {
        await Promise.all(
          writes.map((write) => this.#awaitWrite(write, this.#sendWrite(this.client, write))),
        );
        return writes.map(() => true);
      });
    }
    return this.#guard.run('set', failed, async () => {
      const pipeline = this.client.pipeline();
      for (const write of writes) this.#sendWrite(pipeline, write);
      const replies = (await pipeline.exec()) ?? [];
      let at = 0;
      for (const write of writes) {
        const count = 1 + 3 * write.tags.length; // as #sendWrite sends them
        this.#dropIfUntagged(
          write,
          replies.slice(at, at + count).map(([replyError]) => replyError),
        );
        at += count;
      }
      const error = replies.find(([replyError]) => replyError)?.[0];
      if (error) throw error;
      return writes.map(() => true);
    });
  }

  /**
   * Sends the writes batched in this turn, by this tier or another on its client (see
   * {@link ClientWriteOrder}), before a command that must follow them: commands on
   * one connection run in order, so a delete, tag delete, clear or compare-and-set issued right
   * after a write (not awaited, or in background write mode) would otherwise reach Redis before
   * the write's SET, which would then bring the value back.
   */
  #writesFirst(): void {
    // Only the tier batching last may hold batches: the others sent theirs when it began.
    const batching = this.#writeOrder.batching;
    if (batching !== undefined) batching.#sendBatches();
  }

  /** Sends this tier's batched writes now. */
  #sendBatches(): void {
    this.#writes?.flush();
    this.#casWrites?.flush();
  }

  /**
   * Makes this tier the one that batches the writes of its client (see {@link ClientWriteOrder}),
   * sending first what another tier of the client gathered.
   */
  #batchAfterOthers(): void {
    const order = this.#writeOrder;
    const batching = order.batching;
    if (batching === this) return;
    if (batching !== undefined) batching.#sendBatches();
    order.batching = this;
  }

  /** Deletes keys; returns how many existed, or undefined when Redis was unavailable. */
  delete(keys: readonly string[]): Promise<number | undefined> {
    if (keys.length === 0) return Promise.resolve(0);
    this.#writesFirst();
    return this.#guard.run('delete', undefined as number | undefined, async () => {
      const redisKeys = keys.map((key) => this.dataKey(key));
      if (!this.#cluster) {
        const counts = await Promise.all(
          inCommands(redisKeys).map((commandKeys) => this.client.unlink(...commandKeys)),
        );
        return counts.reduce((sum, count) => sum + count, 0);
      }
      const counts = await Promise.all(redisKeys.map((key) => this.client.unlink(key)));
      return counts.reduce((sum, count) => sum + count, 0);
    });
  }

  /**
   * Calls `onPage` with each page of a tag's key set (SSCAN of {@link tagPageKeys}), one after
   * the other, so a tag of any size is held in memory a page at a time. Each SSCAN is one
   * guarded operation. Returns false when a page could not be read (Redis failed; the later
   * pages are not visited). A key may come in two pages (SSCAN's guarantee is "at least once").
   * `operation` labels the SSCANs in metrics: a tag delete's are `delete_tag`, as its other calls.
   */
  async forEachTagPage(
    tag: string,
    onPage: (keys: string[]) => Promise<void>,
    operation: 'tag_members' | 'delete_tag' = 'tag_members',
  ): Promise<boolean> {
    this.#writesFirst();
    if (this.#cluster && !(await this.#tagWritesSent(tag, operation))) return false;
    const tagKey = this.tagKey(tag);
    let cursor = '0';
    do {
      const at = cursor;
      const page = await this.#guard.run(operation, undefined, () =>
        this.client.sscan(tagKey, at, 'COUNT', tagPageKeys),
      );
      if (page === undefined) return false;
      if (page[1].length > 0) await onPage(page[1]);
      cursor = page[0];
    } while (cursor !== '0');
    return true;
  }

  /**
   * Deletes the keys of a tag whose value still carries it and empties the tag's set, page by
   * page ({@link forEachTagPage}), {@link tagCheckKeys} keys at a time: their values are read
   * (one guarded operation), `carriesTag` decides from the bytes, and those that carry it are
   * deleted by compare-and-set (a second one), so that a key rewritten without the tag, here
   * or by another instance, keeps its new value (the bus message names only the tag, and the
   * instance that wrote it would keep it in L1 while L2 lost it), and a write landing between
   * the read and the delete wins. Then the page's members are removed from the set (a third),
   * except those whose value changed meanwhile: the set may still need to name them, and a
   * member whose value lacks the tag costs only a read. The removed members are then read
   * again, and those tagged meanwhile put back (`#restoreTagged`): one more read of the
   * page, mostly of deleted keys. Deleting before removing means a
   * page cut short by a failure leaves its members in the set for the next try.
   * `onDeleted` is called with the keys of each batch once their deletes are done. Returns
   * false when a page failed (Redis unavailable), true when the whole tag was done.
   */
  deleteTag(
    tag: string,
    carriesTag: (key: string, bytes: Buffer) => boolean | Promise<boolean>,
    onDeleted: (keys: string[]) => void,
  ): Promise<boolean> {
    const tagKey = this.tagKey(tag);
    let failed = false;
    return this.forEachTagPage(
      tag,
      async (keys) => {
        const leave = new Set<string>();
        for (let start = 0; start < keys.length && !failed; start += tagCheckKeys) {
          const batch = keys.slice(start, start + tagCheckKeys);
          const values = await this.#guard.run('delete_tag', undefined, () => this.#readRaw(batch));
          if (values === undefined) {
            failed = true;
            break;
          }
          const doomed: number[] = [];
          for (let index = 0; index < batch.length; index += 1) {
            const bytes = values[index];
            if (bytes !== undefined && (await carriesTag(batch[index]!, bytes))) doomed.push(index);
          }
          if (doomed.length === 0) continue;
          const outcomes = await this.replaceManyIfUnchanged(
            doomed.map((index) => ({ key: batch[index]!, expected: values[index]!, next: undefined })),
            'delete_tag',
          );
          if (outcomes === undefined) {
            failed = true;
            break;
          }
          const deleted: string[] = [];
          doomed.forEach((index, at) => {
            if (outcomes[at]) deleted.push(batch[index]!);
            else leave.add(batch[index]!);
          });
          if (deleted.length > 0) onDeleted(deleted);
        }
        if (failed) throw pageFailed;
        const done = leave.size === 0 ? keys : keys.filter((key) => !leave.has(key));
        if (done.length === 0) return;
        const removed = await this.#guard.run('delete_tag', false, async () => {
          await this.client.srem(tagKey, ...done);
          return true;
        });
        if (!removed || !(await this.#restoreTagged(tagKey, done, carriesTag))) throw pageFailed;
      },
      'delete_tag',
    ).catch((error: unknown) => {
      if (error === pageFailed) return false;
      throw error;
    });
  }

  /**
   * Puts back in a tag's set the members just removed whose value carries the tag again: a
   * write with the tag landing between {@link deleteTag}'s read and its SREM (its SADD then a
   * no-op) lost its place in the set, and the next `deleteByTag` would leave it in L2. A write
   * sends its SET before its SADD, so one whose SADD came before the SREM is seen by this read.
   * The set is given the expiry of a member that never expires if it has none (the SREM may
   * have emptied it, and the write's expiry went with it): it may outlive its members, never
   * the reverse. False when Redis failed.
   */
  async #restoreTagged(
    tagKey: string,
    removed: readonly string[],
    carriesTag: (key: string, bytes: Buffer) => boolean | Promise<boolean>,
  ): Promise<boolean> {
    for (let start = 0; start < removed.length; start += tagCheckKeys) {
      const batch = removed.slice(start, start + tagCheckKeys);
      const values = await this.#guard.run('delete_tag', undefined, () => this.#readRaw(batch));
      if (values === undefined) return false;
      const tagged: string[] = [];
      for (let index = 0; index < batch.length; index += 1) {
        const bytes = values[index];
        if (bytes !== undefined && (await carriesTag(batch[index]!, bytes))) tagged.push(batch[index]!);
      }
      if (tagged.length === 0) continue;
      const restored = await this.#guard.run('delete_tag', false, async () => {
        await this.client.sadd(tagKey, ...tagged);
        await this.client.pexpire(tagKey, TAG_SET_FOREVER_MS, 'NX');
        return true;
      });
      if (!restored) return false;
    }
    return true;
  }

  /**
   * Plain reads of values (no sliding: an expire is not a use), one MGET on a single node, as one
   * guarded operation labelled `operation`; undefined when Redis is unavailable.
   */
  readValues(keys: readonly string[], operation: 'expire'): Promise<(Buffer | undefined)[] | undefined> {
    this.#writesFirst();
    return this.#guard.run(operation, undefined, () => this.#readRaw(keys));
  }

  /** Plain reads of values (no sliding: a tag check is not a use), one MGET on a single node. */
  async #readRaw(keys: readonly string[]): Promise<(Buffer | undefined)[]> {
    const redisKeys = keys.map((key) => this.dataKey(key));
    const values = this.#cluster
      ? await Promise.all(redisKeys.map((key) => this.client.getBuffer(key)))
      : await this.#mget(redisKeys);
    return values.map((value) => value ?? undefined);
  }

  /** MGET of `redisKeys` on a single node, {@link KEYS_PER_COMMAND} keys per command, sent together. */
  async #mget(redisKeys: readonly string[]): Promise<(Buffer | null)[]> {
    if (redisKeys.length <= KEYS_PER_COMMAND) return this.client.mgetBuffer(...redisKeys);
    const parts = await Promise.all(
      inCommands(redisKeys).map((commandKeys) => this.client.mgetBuffer(...commandKeys)),
    );
    return parts.flat();
  }

  /**
   * Replaces values by compare-and-set (see {@link Replacement}; `compare-and-set.lua`), in Lua
   * on each key's own node, as one guarded operation labelled `operation`. The script compares
   * a SHA-1 of the bytes rather than the bytes themselves, so a large value crosses the network
   * once, not twice. On a single node, one script call per chunk of at most
   * {@link CAS_SCRIPT_KEYS} keys and about {@link CAS_SCRIPT_BYTES} of values (each is hashed
   * inside Redis, which serves no one else meanwhile); on a Cluster one per key (a script's keys
   * must share a slot). One call per key was one socket write each: most of the CPU time of an
   * expire of a large tag. Returns, per item, whether it was replaced (false: another write
   * changed or removed it meanwhile); undefined when Redis is unavailable.
   */
  replaceManyIfUnchanged(
    items: readonly Replacement[],
    operation: 'expire' | 'delete_tag',
  ): Promise<boolean[] | undefined> {
    this.#writesFirst();
    const argsOf = (item: Replacement) => {
      const frame = slidingFrameBytes(item.expected);
      const digest = createHash('sha1').update(item.expected.subarray(frame)).digest('hex');
      const ms = item.ttlMs === undefined ? '' : String(Math.max(1, Math.ceil(item.ttlMs)));
      return [digest, item.next ?? '', ms, String(frame)];
    };
    return this.#guard.run(operation, undefined as boolean[] | undefined, async () => {
      if (this.#cluster) {
        return Promise.all(
          items.map(
            async (item) =>
              (await this.#eval(replaceIfUnchangedScript, this.dataKey(item.key), argsOf(item))) === 1,
          ),
        );
      }
      const chunks: Replacement[][] = [];
      let chunk: Replacement[] = [];
      let bytes = 0;
      for (const item of items) {
        if (
          chunk.length === CAS_SCRIPT_KEYS ||
          (chunk.length > 0 && bytes + item.expected.length > CAS_SCRIPT_BYTES)
        ) {
          chunks.push(chunk);
          chunk = [];
          bytes = 0;
        }
        chunk.push(item);
        bytes += item.expected.length;
      }
      if (chunk.length > 0) chunks.push(chunk);
      const replies = await Promise.all(
        chunks.map((part) =>
          this.#evalKeys(
            replaceManyIfUnchangedScript,
            part.map((item) => this.dataKey(item.key)),
            part.flatMap(argsOf),
          ),
        ),
      );
      return replies.flatMap((reply) => (reply as number[]).map((replaced) => replaced === 1));
    });
  }

  /**
   * Tries to take the compute lease of a key for `leaseMs` (SET NX PX). A SET NX sent but not
   * answered (past its deadline, or its connection lost) may still land: its release is sent
   * right behind it, on the same connection, so that it frees the lease if it ever lands
   * (not after an error reply in time: that is Redis's answer, and the SET NX did not run).
   * Otherwise nobody released it (the caller runs without it and, with the breaker open, may
   * store nothing), and every other instance waited `lock.timeoutMs` on it for a value that
   * never came. Sent past the guard: the breaker that the timeout opened would skip it, and a
   * release of our own token is harmless whenever it lands.
   */
  async acquireLease(key: string, token: string, leaseMs: number): Promise<LeaseResult> {
    let unanswered = false;
    try {
      return await this.#guard.run('lease', 'unavailable' as LeaseResult, async () => {
        unanswered = true;
        const reply = await this.client
          .set(this.leaseKey(key), token, 'PX', leaseMs, 'NX')
          .catch((error: unknown) => {
            // An error reply (OOM, READONLY, NOPERM…) is Redis's answer: the SET NX did not run.
            // Released anyway, every refused lease cost a second command past the breaker.
            if ((error as { name?: string } | undefined)?.name === 'ReplyError') unanswered = false;
            throw error;
          });
        unanswered = false;
        return reply === 'OK' ? 'acquired' : 'busy';
      });
    } finally {
      if (unanswered) this.#eval(releaseLeaseScript, this.leaseKey(key), [token]).catch(() => {});
    }
  }

  /**
   * Takes the compute lease of `key` for a `forceFresh` run (`token` starts with
   * {@link forcedLeasePrefix}) in one script: free, it is taken as {@link acquireLease} does;
   * held by a plain run (a miss's, an early refresh, which may have read the source before the
   * change the forced call was made for), it is replaced (`'replaced'`), so that run's write
   * fails its lease check (see {@link setIfUnchanged}); held by a forced run, it is kept
   * (`'busy'`): forced calls made together share that run. Which run came first is told by the
   * holder's kind, not by app servers' clocks. An unanswered attempt is released behind, as
   * {@link acquireLease}'s is (a replaced holder then has no lease: its write is refused still).
   */
  async takeForcedLease(key: string, token: string, leaseMs: number): Promise<LeaseResult | 'replaced'> {
    let unanswered = false;
    try {
      return await this.#guard.run('lease', 'unavailable' as LeaseResult | 'replaced', async () => {
        unanswered = true;
        const reply = await this.#eval(takeForcedLeaseScript, this.leaseKey(key), [
          token,
          String(leaseMs),
        ]).catch((error: unknown) => {
          if ((error as { name?: string } | undefined)?.name === 'ReplyError') unanswered = false;
          throw error;
        });
        unanswered = false;
        return reply === 1 ? 'acquired' : reply === 2 ? 'replaced' : 'busy';
      });
    } finally {
      if (unanswered) this.#eval(releaseLeaseScript, this.leaseKey(key), [token]).catch(() => {});
    }
  }

  /**
   * Records for `ms` that the holder of `key`'s lease failed: waiters that miss the bus's `rel`
   * message (their bus down, or the lease taken just before it arrived) read it here. The mark
   * holds a digest of the value L2 held when the holder failed (see {@link failureMarkOf}), so
   * that it stands for that value only: a value written after the failure (the source was back)
   * and then expired by the user is recomputed by the next caller, not served stale for the rest
   * of the mark. Named by the key alone, it also covered those later values.
   */
  markFailedHolder(key: string, ms: number): Promise<boolean> {
    return this.#guard.run('lease_release', false, async () => {
      const current = await this.client.getBuffer(this.dataKey(key));
      return (
        (await this.client.set(`${this.#prefix}__failed:${key}`, failureMarkOf(current), 'PX', ms)) === 'OK'
      );
    });
  }

  /**
   * Whether a holder of `key`'s lease failed within the last {@link markFailedHolder} period over
   * the value L2 still holds. A mark of another value (the key was written, expired or deleted
   * since), or one of the previous release (`'1'`, no digest), does not count: the caller then
   * runs its factory, as without a mark. The two GETs are sent together (one round trip).
   */
  holderFailed(key: string): Promise<boolean> {
    return this.#guard.run('lease', false, async () => {
      const [mark, current] = await Promise.all([
        this.client.get(`${this.#prefix}__failed:${key}`),
        this.client.getBuffer(this.dataKey(key)),
      ]);
      return mark !== null && mark === failureMarkOf(current);
    });
  }

  /**
   * Whether another holder has the lease of `key` now (it expired under `token`'s holder and was
   * taken again): a GET, sent only for a run that outlived its lease. Unknown (Redis failed): false.
   */
  leaseTakenOver(key: string, token: string): Promise<boolean> {
    return this.#guard.run('lease', false, async () => {
      const holder = await this.client.get(this.leaseKey(key));
      return holder !== null && holder !== token;
    });
  }

  /** Releases a lease if `token` still holds it. */
  releaseLease(key: string, token: string): Promise<boolean> {
    return this.#guard.run(
      'lease_release',
      false,
      async () => (await this.#eval(releaseLeaseScript, this.leaseKey(key), [token])) === 1,
    );
  }

  /**
   * Makes the value of `key` live at least `ttlMs` more in Redis, and its tag sets as long, only
   * if the key still holds `expected` (the bytes read, a sliding entry's frame of timings aside):
   * what a factory run does as it starts, so that its compare-and-set write
   * ({@link setIfUnchanged}) still finds the value it read when the run outlasts the value's
   * physical TTL (`extend-if-unchanged.lua`). A TTL is never shortened; a value deleted or
   * replaced since the read is not touched. One script call on a single node; on a Cluster (tag
   * sets live in other slots) the tag sets get a `PEXPIRE … GT` each, sent with the script, not
   * after its answer (one round trip, not two): extending the sets of a value that was not
   * extended harms nothing. PEXPIRE never creates a set (one a tag delete removed stays gone), GT
   * never shortens one, and a set that lives longer only names keys a tag delete then checks
   * and skips (as it does every member whose value expired); it costs the set's memory until
   * the extension ends. The script's answer decides: a key that changed is reported so (false)
   * even when a tag set's PEXPIRE failed. Returns whether the key still held the value,
   * undefined when Redis was unavailable (labelled `refresh_extend`).
   */
  extendIfUnchanged(
    key: string,
    expected: Buffer,
    ttlMs: number,
    tags: readonly string[],
  ): Promise<boolean | undefined> {
    this.#writesFirst();
    const { digest, frame } = casDigest(expected);
    const ms = Math.max(1, Math.ceil(ttlMs));
    const args = [digest, String(frame), String(ms)];
    const tagKeys = tags.map((tag) => this.tagKey(tag));
    // The last extension of this key is still unanswered (past its deadline: a stalled master, a
    // Redis that hangs): it lands when Redis answers, and one more would only wait behind it and
    // land with it, each costing a deadline meanwhile. Not sent, and not a failure (nothing ran).
    if (this.#unansweredExtensions.has(key)) return Promise.resolve(undefined);
    return this.#guard.run('refresh_extend', undefined as boolean | undefined, async () => {
      if (!this.#cluster)
        return (
          (await this.#unanswered(
            key,
            this.#evalKeys(extendIfUnchangedScript, [this.dataKey(key), ...tagKeys], args),
          )) === 1
        );
      const [kept, ...tagSets] = await Promise.allSettled([
        this.#unanswered(key, this.#eval(extendIfUnchangedScript, this.dataKey(key), args)),
        ...tagKeys.map((tagKey) => this.client.pexpire(tagKey, ms, 'GT')),
      ]);
      if (kept!.status === 'rejected') throw kept!.reason;
      // The key changed: what its tag sets' PEXPIREs did no longer matters (a failed one neither).
      if (kept!.value !== 1) return false;
      const failed = tagSets.find((outcome) => outcome.status === 'rejected');
      if (failed) throw failed.reason;
      return true;
    });
  }

  /**
   * Keys whose last {@link extendIfUnchanged} script call Redis has not answered yet (or failed),
   * whatever its deadline said: see there.
   */
  readonly #unansweredExtensions = new Set<string>();

  /** `call`, with `key` in {@link #unansweredExtensions} until Redis answers it (or it fails). */
  #unanswered<T>(key: string, call: Promise<T>): Promise<T> {
    this.#unansweredExtensions.add(key);
    const answered = () => this.#unansweredExtensions.delete(key);
    call.then(answered, answered);
    return call;
  }

  /**
   * Tries to take the cache-wide lease `<prefix>__<name>` (SET NX PX), for coordination
   * between instances that is not about one key (e.g. the bus's root clear after an outage).
   * A lease `token` already holds is acquired: an attempt that timed out may have landed.
   */
  acquireCacheLease(name: string, token: string, leaseMs: number): Promise<LeaseResult> {
    return this.#guard.run('lease', 'unavailable' as LeaseResult, async () => {
      const key = `${this.#prefix}__${name}`;
      if ((await this.client.set(key, token, 'PX', leaseMs, 'NX')) === 'OK') return 'acquired';
      return (await this.client.get(key)) === token ? 'acquired' : 'busy';
    });
  }

  /** Releases a lease of {@link acquireCacheLease} if `token` still holds it. */
  releaseCacheLease(name: string, token: string): Promise<boolean> {
    return this.#guard.run(
      'lease_release',
      false,
      async () => (await this.#eval(releaseLeaseScript, `${this.#prefix}__${name}`, [token])) === 1,
    );
  }

  /**
   * The shared msgpack record structures, `[epoch, structure…]`, created with `newEpoch` when
   * absent (see `SharedStructures`). Undefined when Redis is unavailable.
   */
  loadStructures(newEpoch: string): Promise<string[] | undefined> {
    return this.#guard.run('structures', undefined, async () =>
      toStrings(await this.#eval(structuresLoadScript, this.structuresKey, [newEpoch])),
    );
  }

  /**
   * Appends structures if the list still has `expectedLength` entries, up to `maxLength`;
   * returns the list after either way (undefined when Redis is unavailable).
   */
  appendStructures(
    expectedLength: number,
    maxLength: number,
    items: readonly string[],
  ): Promise<string[] | undefined> {
    return this.#guard.run('structures', undefined, async () =>
      toStrings(
        await this.#eval(structuresAppendScript, this.structuresKey, [
          String(expectedLength),
          String(maxLength),
          ...items,
        ]),
      ),
    );
  }

  /** Redis key of the shared msgpack record structures (one list per prefix). */
  get structuresKey(): string {
    return `${this.#prefix}__structures`;
  }

  /** `get-sliding.lua` on one data key: its value (extended when sliding and fresh at `now`). */
  async #readSliding(redisKey: string, now: number): Promise<Buffer | undefined> {
    const clockMs = String(now);
    let value: Buffer | null;
    try {
      value = (await this.client.callBuffer(
        'evalsha',
        getSlidingScript.sha,
        1,
        redisKey,
        clockMs,
      )) as Buffer | null;
    } catch (error) {
      if (!String((error as Error).message).includes('NOSCRIPT')) throw error;
      value = (await this.client.callBuffer(
        'eval',
        getSlidingScript.source,
        1,
        redisKey,
        clockMs,
      )) as Buffer | null;
    }
    return value ?? undefined;
  }

  async #eval(lua: Script, key: string, args: readonly (string | Buffer)[]): Promise<unknown> {
    try {
      return await this.client.evalsha(lua.sha, 1, key, ...args);
    } catch (error) {
      if (!String((error as Error).message).includes('NOSCRIPT')) throw error;
      return await this.client.eval(lua.source, 1, key, ...args);
    }
  }

  /** {@link #eval} of a script over many keys (on a single node, or keys of one slot). */
  async #evalKeys(
    lua: Script,
    keys: readonly string[],
    args: readonly (string | Buffer)[],
  ): Promise<unknown> {
    try {
      return await this.client.evalsha(lua.sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!String((error as Error).message).includes('NOSCRIPT')) throw error;
      return await this.client.eval(lua.source, keys.length, ...keys, ...args);
    }
  }

  /** Replaces the saved hot-key list (most valuable first). */
  saveHotKeys(keys: readonly string[]): Promise<boolean> {
    return this.#guard.run('hot_keys', false, async () => {
      const listKey = `${this.#prefix}__hot`;
      await this.client.del(listKey);
      for (const commandKeys of inCommands(keys)) await this.client.rpush(listKey, ...commandKeys);
      return true;
    });
  }

  /** Reads up to `limit` saved hot keys. */
  loadHotKeys(limit: number): Promise<string[]> {
    return this.#guard.run('hot_keys', [] as string[], () =>
      this.client.lrange(`${this.#prefix}__hot`, 0, Math.max(0, limit - 1)),
    );
  }

  /** Publishes a bus message (guarded: dropped when Redis is unavailable). */
  publish(channel: string, message: string): Promise<boolean> {
    return this.#guard.run('publish', false, async () => {
      await this.client.publish(channel, message);
      return true;
    });
  }

  /**
   * Deletes every value under `keyPrefix` (SCAN on every master; clear is rare). The root clear
   * (`keyPrefix` empty) also deletes the tag sets, which would only name deleted keys, and,
   * once every value is gone, the shared structures list: no value is left to need it. A value
   * another instance writes with the old list meanwhile is a miss on every instance (its
   * fingerprint names the old list), never a wrong value: the bus's `clear` has every instance
   * read the list again before it writes or decodes shared values (`distrust`).
   * A namespace's clear keeps the list: the other namespaces' values use it. Never deleted:
   * live leases (a computation in progress keeps its single flight) and the saved hot keys (a
   * missing key there is only a miss at the next start).
   */
  clearPrefix(keyPrefix: string): Promise<boolean> {
    this.#writesFirst();
    // An ioredis `keyPrefix` is added to every key the client sends, but not to SCAN's MATCH
    // pattern, and SCAN's replies carry it: the pattern gets it here, and each key found loses
    // the prefix of the node client that UNLINKs it (which adds it back).
    const clientPrefix = keyPrefixOf(this.client);
    const patterns = [`${escapeGlob(clientPrefix + this.#dataPrefix + keyPrefix)}*`];
    if (keyPrefix === '') patterns.push(`${escapeGlob(`${clientPrefix}${this.#prefix}__tag:`)}*`);
    const nodes = isCluster(this.client) ? this.client.nodes('master') : [this.client];
    // Each page (one SCAN and its UNLINKs) is one guarded operation: the deadline bounds a
    // page, not the whole clear, which takes as long as its keys need. One deadline for it all
    // returned (and let the bus announce the clear) while Redis went on deleting, so other
    // instances reread values it deleted a moment later and kept them in L1.
    const scanAll = async (node: IoRedisClient, pattern: string): Promise<boolean> => {
      const nodePrefix = keyPrefixOf(node);
      let cursor: string | undefined = '0';
      do {
        const at: string = cursor;
        cursor = await this.#guard.run('clear', undefined as string | undefined, async () => {
          const [next, keys] = await node.scan(at, 'MATCH', pattern, 'COUNT', 500);
          if (keys.length > 0) {
            await Promise.all(keys.map((key) => node.unlink(withoutPrefix(key, nodePrefix))));
          }
          return next;
        });
        if (cursor === undefined) return false;
      } while (cursor !== '0');
      return true;
    };
    const scans = Promise.all(nodes.flatMap((node) => patterns.map((pattern) => scanAll(node, pattern))));
    return scans.then(async (done) => {
      if (!done.every(Boolean)) return false;
      if (keyPrefix !== '') return true;
      return this.#guard.run('clear', false, async () => {
        await this.client.unlink(this.structuresKey);
        return true;
      });
    });
  }

  /** Awaits the replies of one write sent on the connection; rejects with its first error. */
  async #awaitWrite(write: PendingWrite, sent: unknown[]): Promise<void> {
    const settled = await Promise.allSettled(sent);
    this.#dropIfUntagged(
      write,
      settled.map((reply) => (reply.status === 'rejected' ? reply.reason : null)),
    );
    const failed = settled.find((reply) => reply.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
  }

  /**
   * A tagged write whose SET ran while one of its tag commands failed (memory ran out between
   * them under `noeviction`: the SET is what crossed `maxmemory`) left a value that its tag set
   * does not name, which a `deleteByTag` would miss and every instance would serve until its TTL.
   * That value is deleted (DEL is allowed out of memory), sent past the breaker as a lease
   * release is: a miss, never a value its tag no longer reaches. `errors` are the write's replies'
   * errors in the order `#sendWrite` sent its commands (null: it succeeded).
   */
  #dropIfUntagged(write: PendingWrite, errors: readonly unknown[]): void {
    if (write.tags.length === 0 || errors[0] != null || !errors.some((error) => error != null)) return;
    (this.client.del(this.dataKey(write.key)) as Promise<unknown>).catch(() => {});
  }

  /**
   * Sends one write's commands on `target` (the connection or a pipeline) without waiting:
   * the value with its physical TTL, then each tag's key set. Commands on one key go out in
   * order on one connection, so a tag set exists before its expiry is set. Returns the
   * replies: promises on a connection (a pipeline's come from `exec()`).
   */
  #sendWrite(target: WriteTarget, { key, bytes, ttlMs, tags, tagTtlMs }: PendingWrite): unknown[] {
    const ms = ttlMs === undefined ? undefined : Math.max(1, Math.ceil(ttlMs));
    const dataKey = this.dataKey(key);
    if (tags.length > 0) this.#tagsWritten();
    const sent = [ms === undefined ? target.set(dataKey, bytes) : target.set(dataKey, bytes, 'PX', ms)];
    const tagSetMs = tagTtlMs === undefined ? TAG_SET_FOREVER_MS : Math.max(1, Math.ceil(tagTtlMs));
    // On a Cluster the tag sets live on other masters, whose connections do not keep the order
    // in which commands were sent: the tag commands go once the SET is answered (one more round
    // trip for a tagged write), so that a SADD never lands before its SET, which a tag delete's
    // restore and a Cluster prune rely on (see `#pruneApart`). A SET that failed sends none.
    const stored = sent[0] as Promise<unknown>;
    if (this.#cluster && tags.length > 0) this.#noteTagWrite(tags, stored);
    const send = this.#cluster
      ? (command: () => unknown) => stored.then(command)
      : (command: () => unknown) => command();
    for (const tag of tags) {
      const tagKey = this.tagKey(tag);
      sent.push(send(() => target.sadd(tagKey, key)));
      // The set lives as long as its longest-lived member: NX sets a first expiry, GT extends it.
      sent.push(
        send(() => target.pexpire(tagKey, tagSetMs, 'NX')),
        send(() => target.pexpire(tagKey, tagSetMs, 'GT')),
      );
    }
    return sent;
  }
}

/** `keys` in slices of at most {@link KEYS_PER_COMMAND}, one per command (none for no keys). */
function inCommands(keys: readonly string[]): string[][] {
  const slices: string[][] = [];
  for (let start = 0; start < keys.length; start += KEYS_PER_COMMAND) {
    slices.push(keys.slice(start, start + KEYS_PER_COMMAND));
  }
  return slices;
}

/** A tag set's expiry for a member that must be named `tagTtlMs` (undefined: forever). */
function tagSetExpiry(tagTtlMs: number | undefined): number {
  return tagTtlMs === undefined ? TAG_SET_FOREVER_MS : Math.max(1, Math.ceil(tagTtlMs));
}

/** A physical TTL as a script takes it: whole ms, at least 1; '' for none. */
function physicalMs(ttlMs: number | undefined): string {
  return ttlMs === undefined ? '' : String(Math.max(1, Math.ceil(ttlMs)));
}

/**
 * What `compare-and-set.lua` compares with: the SHA-1 of the bytes read past a sliding entry's
 * frame of timings (the frame's length too), '' when there was no value.
 */
function casDigest(expected: Buffer | null): { digest: string; frame: number } {
  if (expected === null) return { digest: '', frame: 0 };
  const frame = slidingFrameBytes(expected);
  return { digest: createHash('sha1').update(expected.subarray(frame)).digest('hex'), frame };
}

function toStrings(reply: unknown): string[] {
  if (!Array.isArray(reply)) throw new Error('unexpected reply to a structures script');
  return reply.map(String);
}

/** The `keyPrefix` an ioredis client (node or Cluster) adds to every key it sends ('' without). */
function keyPrefixOf(client: IoRedisClient): string {
  const prefix = (client.options as { keyPrefix?: unknown }).keyPrefix;
  return typeof prefix === 'string' ? prefix : '';
}

/**
 * A key SCAN found, as the node client must be given it to reach it. A key outside the node's
 * prefix cannot be named through it (a Cluster whose `keyPrefix` differs from its nodes'; the
 * pattern holds the Cluster's): kept as is, that UNLINK misses.
 */
function withoutPrefix(key: string, prefix: string): string {
  return prefix !== '' && key.startsWith(prefix) ? key.slice(prefix.length) : key;
}

function escapeGlob(value: string): string {
  return value.replace(/[*?[\]\\]/g, '\\$&');
}

/** Whether `value` is a sliding entry (format 3), whose frame of timings reads may move. */
function isSlidingFrame(value: Buffer): boolean {
  return value.length >= slidingFrameLength && value[0] === slidingFrameHeader;
}

/**
 * What a failure mark holds: a SHA-1 of the value L2 held (its sliding frame of timings aside,
 * which reads move), or `-` when it held none.
 */
function failureMarkOf(current: Buffer | null): string {
  if (current === null) return '-';
  return createHash('sha1')
    .update(current.subarray(slidingFrameBytes(current)))
    .digest('hex');
}

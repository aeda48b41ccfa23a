import { createHash, randomInt } from 'node:crypto';
import { Packr } from 'msgpackr';
import { msgpackOptions } from './value-serializer.js';

/**
 * Where the shared structures live: a list `[epoch, structure…]` (each structure a JSON array
 * of keys). `RedisTier` implements it; both methods return the list, or undefined when the
 * store is unavailable.
 */
export interface StructureStore {
  /** The list, created with `newEpoch` when absent. */
  loadStructures(newEpoch: string): Promise<string[] | undefined>;
  /** Appends `items` if the list still has `expectedLength` entries, up to `maxLength`. */
  appendStructures(
    expectedLength: number,
    maxLength: number,
    items: readonly string[],
  ): Promise<string[] | undefined>;
}

/** Most shared structures (msgpackr's one-byte record ids leave 32 for shared shapes). */
export const MAX_SHARED_STRUCTURES = 32;

/** Shapes with more keys than this are never proposed (see `#propose`). */
const MAX_SHARED_KEYS = 64;

/** A shape is proposed for sharing once this many encodes met it (one-off shapes stay inline). */
const PROPOSE_AFTER = 2;

/** After a failed or useless store call, do not call again for this long (ms). */
const RETRY_AFTER_MS = 1_000;

/** Most signatures remembered as not made decodable by a load (see `#undecodable`). */
const MAX_UNDECODABLE_SIGNATURES = 256;

/** The list is re-read this often while encoding, to notice an eviction or a flush (ms). */
const RECHECK_AFTER_MS = 30_000;

/**
 * msgpackr record structures (the key lists of repeated object shapes) shared by every
 * instance through the store, so a value refers to its shapes by a one-byte id instead of
 * describing them inline, and a decoder keeps its compiled reader per shape across values
 * (msgpackr's documented large decode gain for records).
 *
 * Safety rules, because the store is remote and asynchronous while msgpackr is synchronous:
 * - the encoder only ever uses structures already committed in the store (never ones it just
 *   invented): a new shape is written inline, as before, and proposed; proposals are appended
 *   to the store with a compare-and-set on the list length, then every instance picks them up;
 * - ids are list positions and the list is append-only, so while the store keeps it a
 *   committed id never changes meaning. The list starts with a random epoch, and each value
 *   carries the epoch, the number of structures it may use and a **fingerprint** of exactly
 *   those structures (the first 64 bits of a SHA-256 of the epoch and their key lists): a
 *   value decodes only where the list's prefix has that fingerprint. A store that lost part of
 *   the list (a restart from an older RDB/AOF, a failover to a lagging replica) and then took
 *   a different shape at a lost id cannot make a surviving value decode into that shape, even
 *   on a Cluster where the value sits on another master than the list and survives the loss:
 *   the fingerprints differ, the value is a miss. A value this instance cannot decode has the
 *   list re-read before it is decoded (see {@link loadFor}), once per kind of value: a read-only
 *   instance thereby follows the store without any connection event, and one whose first read
 *   of the list failed decodes the first value it reads;
 * - so that a writer does not go on writing an epoch the store forgot (a Redis restart without
 *   persistence), the connection's `close` calls {@link distrust}: until the list is read again,
 *   values are written self-contained (format 1). The list is also re-read every 30 s.
 */
export class SharedStructures {
  readonly #store: StructureStore;
  readonly #onError: (error: unknown) => void;
  #epoch: number | undefined;
  #committed: string[] = [];
  /** Per prefix length n (0…committed): the fingerprint of the first n structures, high/low 32 bits. */
  #fingerprintsHigh: Uint32Array = new Uint32Array(1);
  #fingerprintsLow: Uint32Array = new Uint32Array(1);
  #encoder: Packr | undefined;
  #decoder: Packr | undefined;
  readonly #seen = new Map<string, number>();
  readonly #proposed = new Set<string>();
  #flushing: Promise<void> | undefined;
  #loading: Promise<void> | undefined;
  /** Loads started so far; the number of the last one that read the list. */
  #loadsStarted = 0;
  #lastLoadRead = 0;
  /**
   * Signatures (epoch, structures used, fingerprint) of values that a load started after they
   * were read still could not decode: written with a list the store no longer has. Their reads
   * re-read the list at most once a second (as after a failed load), not once each.
   */
  readonly #undecodable = new Set<string>();
  /**
   * The last load a value waited for read no list (the store failed): until one does, values
   * wait for a load at most once a second, as for a remembered signature.
   */
  #loadForFailed = false;
  /** The last load that ended read no list. */
  #lastLoadFailed = false;
  #quietUntil = 0;
  #trusted = false;
  /** Calls of {@link distrust} so far: a load that read the list before one does not trust it. */
  #distrusts = 0;
  #loadedAt = 0;

  constructor(store: StructureStore, onError: (error: unknown) => void) {
    this.#store = store;
    this.#onError = onError;
  }

  /** The list's epoch, once loaded. */
  get epoch(): number | undefined {
    return this.#epoch;
  }

  /** Committed structures known here. */
  get length(): number {
    return this.#committed.length;
  }

  /** High 32 bits of the fingerprint of all committed structures (what an encode writes). */
  get fingerprintHigh(): number {
    return this.#fingerprintsHigh[this.#committed.length]!;
  }

  /** Low 32 bits of the fingerprint of all committed structures. */
  get fingerprintLow(): number {
    return this.#fingerprintsLow[this.#committed.length]!;
  }

  /**
   * The encoder over the committed structures; undefined until the list is loaded, and after
   * {@link distrust} until it is loaded again (a load is started, at most once a second).
   */
  get encoder(): Packr | undefined {
    if (!this.#trusted) {
      if (Date.now() >= this.#quietUntil) void this.load();
      return undefined;
    }
    if (Date.now() - this.#loadedAt >= RECHECK_AFTER_MS) void this.load();
    return this.#encoder;
  }

  /**
   * The store may have lost the list, or part of it (the connection closed, a root clear
   * deleted it): write self-contained values until it is read again (at once: the quiet period
   * of a previous load does not apply), so that no value is written with structures the store
   * no longer has. Reads decode nothing until then either (see {@link decoderFor}): a value
   * written with the old list may outlive it (written during a clear), and an instance that
   * still decoded it read a value that every instance loading the new list misses.
   */
  distrust(): void {
    this.#trusted = false;
    this.#quietUntil = 0;
    this.#distrusts += 1;
  }

  /**
   * The decoder for a value that may use `needed` structures whose fingerprint is
   * `high`/`low`, if this instance's first `needed` structures are exactly those: whatever
   * the store lost or another instance appended since, a value never decodes with other shapes.
   * Nothing while the list is not trusted (see {@link distrust}): the value waits for the
   * list to be read again ({@link loadFor}), and decodes only if the list it now holds has its
   * structures, as for an instance that loads the list for the first time. Two array reads and
   * compares and a flag: the per-read cost of the check.
   */
  decoderFor(high: number, low: number, needed: number): Packr | undefined {
    return this.#trusted &&
      needed <= this.#committed.length &&
      this.#fingerprintsHigh[needed] === high &&
      this.#fingerprintsLow[needed] === low
      ? this.#decoder
      : undefined;
  }

  /**
   * For a value of `epoch` that may use `needed` structures of fingerprint `high`/`low`, which
   * {@link decoderFor} refused: a promise that settles once a load of the list that started
   * after this call has ended (shared by every value waiting for one), so that a value whose
   * structures the store holds decodes on this read. A load already in progress may have read
   * the list before the value's writer appended to it, hence the next one. Undefined when no
   * load can help: more structures than are ever shared, or a signature that such a load
   * already failed to make decodable (the list it was written with is gone), whose reads
   * re-read the list at most once a second, so that dead values do not cost a store call each.
   * The same once a second applies to every value while the last load a value waited for
   * failed (the list's node is down or slow: each value read waited for a load that timed out,
   * one after the other), and to signatures not remembered once {@link MAX_UNDECODABLE_SIGNATURES}
   * are: a flood of corrupt or foreign headers otherwise cost a load per read (clearing the set
   * when full forgot them all, and a rotation over more kinds than it holds never hit it).
   */
  loadFor(epoch: number, needed: number, high: number, low: number): Promise<void> | undefined {
    if (needed > MAX_SHARED_STRUCTURES) return undefined;
    const signature = `${epoch}/${needed}/${high}/${low}`;
    if (
      this.#loadForFailed ||
      this.#undecodable.has(signature) ||
      this.#undecodable.size >= MAX_UNDECODABLE_SIGNATURES
    )
      return Date.now() >= this.#quietUntil ? this.#loadForValue(this.load()) : undefined;
    const before = this.#loadsStarted;
    return this.#loadForValue(this.#loadAfter(before)).then(() => {
      // Only a load that read the list after this value was read shows it is undecodable.
      if (this.#lastLoadRead <= before || this.decoderFor(high, low, needed)) return;
      // Full, the set keeps what it holds: its signatures and any new one re-check once a second.
      if (this.#undecodable.size < MAX_UNDECODABLE_SIGNATURES) this.#undecodable.add(signature);
    });
  }

  /** Waits for `loading`, a load a value waits for, noting whether it read the list (see `#loadForFailed`). */
  async #loadForValue(loading: Promise<void>): Promise<void> {
    await loading;
    if (this.#lastLoadFailed) this.#loadForFailed = true;
  }

  /** Waits for a load numbered above `started` (starting one unless another caller has). */
  async #loadAfter(started: number): Promise<void> {
    if (this.#loadsStarted === started) await this.#loading;
    await (this.#loadsStarted === started ? this.load() : this.#loading);
  }

  /** (Re)loads the list from the store; concurrent calls share one load; never rejects. */
  load(): Promise<void> {
    this.#loading ??= (async () => {
      this.#loadedAt = Date.now();
      const number = ++this.#loadsStarted;
      const distrusts = this.#distrusts;
      this.#lastLoadFailed = true; // until it read a list it could apply
      try {
        const list = await this.#store.loadStructures(String(randomInt(1, 2 ** 32 - 1)));
        this.#apply(list);
        this.#lastLoadFailed = list === undefined;
        if (list !== undefined) {
          this.#lastLoadRead = number;
          this.#loadForFailed = false;
        }
        // A distrust during the load (a root clear deleted the list, the connection closed) may
        // have come after the list was read: what it read is not trusted, the next encode reads again.
        if (list !== undefined && this.#epoch !== undefined && distrusts === this.#distrusts)
          this.#trusted = true;
      } catch (error) {
        this.#onError(error);
      } finally {
        if (distrusts === this.#distrusts) this.#quietUntil = Date.now() + RETRY_AFTER_MS;
        this.#loading = undefined;
      }
    })();
    return this.#loading;
  }

  /** Waits for a proposal being appended (for `close()` and tests). */
  async settled(): Promise<void> {
    await this.#loading;
    await this.#flushing;
  }

  /** msgpackr's `shouldShareStructure` hook: records a new shape, keeps it inline (false). */
  #propose(keys: string[]): boolean {
    if (this.#committed.length + this.#proposed.size >= MAX_SHARED_STRUCTURES) return false;
    // Objects used as dictionaries (many, changing keys) are not shapes worth a slot, and
    // serializing their key list on every encode would cost more than sharing saves.
    if (keys.length > MAX_SHARED_KEYS) return false;
    const json = JSON.stringify(keys);
    if (this.#proposed.has(json)) return false;
    const seen = (this.#seen.get(json) ?? 0) + 1;
    if (seen < PROPOSE_AFTER) {
      if (this.#seen.size >= 1_000) this.#seen.clear(); // bounded: one-off shapes are forgotten
      this.#seen.set(json, seen);
      return false;
    }
    this.#seen.delete(json);
    this.#proposed.add(json);
    if (!this.#flushing) {
      this.#flushing = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.#flush());
    }
    return false;
  }

  async #flush(): Promise<void> {
    try {
      const items = [...this.#proposed].filter((json) => !this.#committed.includes(json));
      if (items.length === 0 || this.#epoch === undefined) return;
      const list = await this.#store.appendStructures(
        this.#committed.length + 1,
        MAX_SHARED_STRUCTURES + 1,
        items,
      );
      if (list === undefined) this.#quietUntil = Date.now() + RETRY_AFTER_MS;
      this.#apply(list);
    } catch (error) {
      this.#onError(error);
    } finally {
      // Lost proposals (another instance appended first) are proposed again by later encodes.
      this.#proposed.clear();
      this.#flushing = undefined;
    }
  }

  /**
   * Adopts the store's list. The same epoch normally only grows, but a restart that restored an
   * older copy (an RDB snapshot, AOF `everysec`, a failover to a lagging replica) brings back
   * fewer structures under the same epoch, and another instance may then append a different
   * shape at a lost position: the store's list wins whenever it is not an extension of ours,
   * so that no id keeps a meaning the store no longer gives it.
   */
  #apply(list: string[] | undefined): void {
    if (list === undefined || list.length === 0) return;
    const epoch = Number(list[0]);
    const structures = list.slice(1, MAX_SHARED_STRUCTURES + 1);
    if (!Number.isInteger(epoch) || epoch <= 0 || epoch >= 2 ** 32) return;
    if (
      epoch === this.#epoch &&
      structures.length <= this.#committed.length &&
      structures.every((json, index) => json === this.#committed[index])
    )
      return;
    const parsed = structures.map((json) => JSON.parse(json) as string[]);
    if (!parsed.every((keys) => Array.isArray(keys) && keys.every((key) => typeof key === 'string'))) {
      throw new Error('malformed shared structures list');
    }
    this.#epoch = epoch;
    this.#committed = structures;
    [this.#fingerprintsHigh, this.#fingerprintsLow] = fingerprints(epoch, structures);
    // msgpackr mutates the arrays it is given: one copy each.
    this.#encoder = new Packr({
      ...msgpackOptions,
      structures: parsed.map((keys) => [...keys]),
      maxSharedStructures: MAX_SHARED_STRUCTURES,
      maxOwnStructures: MAX_SHARED_STRUCTURES,
      shouldShareStructure: (keys: string[]) => this.#propose(keys),
    });
    this.#decoder = new Packr({
      ...msgpackOptions,
      structures: parsed.map((keys) => [...keys]),
      maxSharedStructures: MAX_SHARED_STRUCTURES,
      maxOwnStructures: MAX_SHARED_STRUCTURES,
    });
  }
}

/**
 * For each prefix length n (0…structures.length), the first 64 bits of SHA-256 over the epoch and
 * the first n structures (each JSON key list, newline-terminated: a key list's JSON has no raw
 * newline), as two 32-bit halves. Computed once per list change, never per value.
 */
function fingerprints(epoch: number, structures: readonly string[]): [Uint32Array, Uint32Array] {
  const high = new Uint32Array(structures.length + 1);
  const low = new Uint32Array(structures.length + 1);
  const hash = createHash('sha256').update(`${epoch}\n`);
  for (let count = 0; ; count += 1) {
    const digest = hash.copy().digest();
    high[count] = digest.readUInt32BE(0);
    low[count] = digest.readUInt32BE(4);
    if (count === structures.length) break;
    hash.update(`${structures[count]}\n`);
  }
  return [high, low];
}

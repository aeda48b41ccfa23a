import { type Clock, coarseClock, parseOptions } from '@noa/core';
import { z } from 'zod';
import { type FixedWindowState, fixedWindowTtl } from '../algorithms/fixed-window.js';
import { fixedWindowAdmitted, fixedWindowInPlace } from '../algorithms/fixed-window-in-place.js';
import { adjusters, algorithms, inPlaceAlgorithms, stateOf } from '../algorithms/index.js';
import {
  type AutoBlockPolicy,
  type BlockState,
  blockRemainingMs,
  boundedBlock,
  emptyBlockState,
  recordViolation,
  violationsCountUntil,
} from '../auto-block.js';
import type { Decision } from '../decision.js';
import type { LimitPolicy } from '../policy.js';
import { windowOffsetOf } from '../window-offset.js';
import type {
  ConsumeOptions,
  ConsumeOutcome,
  ConsumeRequest,
  RateLimitStore,
  StoreAdjustment,
} from './store.js';

/** Options of {@link MemoryStore}. */
export const memoryStoreOptionsSchema = z
  .object({
    /** Hard cap on keys kept; beyond it the least recently refreshed keys are evicted. */
    maxKeys: z.number().int().positive().default(100_000),
    /**
     * Room kept apart for keys blocked now (auto-block or `block()`), beyond `maxKeys` (which holds
     * the counters): the store holds one key more per blocked key, up to this many, and evicting
     * never drops a live block while no more keys than this are blocked. Past it, the least
     * recently used blocked keys are evicted as counters are, so a flood of blocked keys cannot
     * squeeze the counters out either. Default: a tenth of `maxKeys` (rounded up). 0: blocked keys
     * are evicted as any other.
     */
    maxBlockedKeys: z.number().int().nonnegative().optional(),
    /**
     * Time source. Default: `coarseClock` from `@noa/core`, which reuses one `Date.now()` reading
     * for up to 16 checks within one event-loop turn (the clock read is about a third of a
     * check's cost); pass `systemClock` to read the time on every check, or a `ManualClock` in tests.
     */
    clock: z
      .custom<Clock>((value) => typeof (value as Clock)?.now === 'function', 'must have now()')
      .optional(),
  })
  .strict();

/** Options of {@link MemoryStore} as written by users. */
export type MemoryStoreOptions = z.input<typeof memoryStoreOptionsSchema>;

/**
 * A key's record. A single fixed window keeps its state inline (`windowStart`, `count`: the
 * entry is itself a {@link FixedWindowState}) and `states` stays undefined: one object per key
 * instead of three (entry, states array, state), which saves the two dependent memory loads that
 * dominate a check over many keys. Every other rule keeps one state per limit in `states` (a
 * single limit's record is made on the key's first admitted request and then updated in place).
 */
interface Entry extends FixedWindowState {
  states: unknown[] | undefined;
  block: BlockState | undefined;
  expiresAt: number;
  /** When the entry last moved to the young end of the store's list (approximate LRU). */
  movedAt: number;
  /** Its key: eviction finds an entry by its age, and drops it from the map by this. */
  readonly key: string;
  /** Its namespace's map, which eviction (finding it by age, in any namespace) drops it from. */
  readonly space: KeySpace;
  /** The next older entry of the store (see {@link RecencyList}); undefined for the oldest. */
  older: Entry | undefined;
  /** The next younger entry of the store; undefined for the youngest. */
  younger: Entry | undefined;
}

/**
 * A namespace of the memory store as {@link MemoryStore.consumeHot} takes it: an object made once
 * per namespace by its user, compared by reference.
 */
export interface HotSpaceToken {
  readonly namespace: string;
}

/** The consumeHot of a store whose consumeSingle is overridden: always "ask consumeSingle". */
const noHotPath = (): undefined => undefined;

/** A new entry (every entry is made here, so all share one shape). */
function newEntry(
  key: string,
  space: KeySpace,
  states: unknown[] | undefined,
  block: BlockState | undefined,
  now: number,
): Entry {
  return {
    windowStart: Number.NaN,
    count: 0,
    states,
    block,
    expiresAt: now,
    movedAt: now,
    key,
    space,
    older: undefined,
    younger: undefined,
  };
}

/** A namespace's entries by key (the limiter's rule, or a store user's own namespace). */
class KeySpace extends Map<string, Entry> {
  constructor(readonly name: string) {
    super();
  }
}

/**
 * Every entry of the store, whatever its namespace, in a list from the least to the most recently
 * moved: the order of eviction and of the sweep of expired entries. One list for the store, not
 * one per namespace: evicting the inserting namespace's own oldest key first let a namespace with
 * few keys (a login limiter beside a busy API limiter sharing the store, a role with few users)
 * churn through its own live keys while idle keys of the others held the store, so its limits
 * were never enforced (test/memory-store-shared-eviction.test.ts). A Map's own order would give
 * the same, but an iteration from a V8 Map's head walks every slot deleted since the Map was last
 * rehashed, and past the cap every insertion deletes at the head: each one walked all the keys
 * evicted before it (up to the Map's capacity), and a new key cost 20-200x more at 1-8x
 * `maxKeys`. The list reaches the oldest entry in one step, whatever was deleted; the Maps are
 * only read by key.
 */
class RecencyList {
  oldest: Entry | undefined = undefined;
  youngest: Entry | undefined = undefined;

  /** Puts `entry` (in no list) at the young end. */
  append(entry: Entry): void {
    const youngest = this.youngest;
    entry.older = youngest;
    entry.younger = undefined;
    if (youngest === undefined) this.oldest = entry;
    else youngest.younger = entry;
    this.youngest = entry;
  }

  /** Takes `entry` out of the list. */
  unlink(entry: Entry): void {
    const { older, younger } = entry;
    if (older === undefined) this.oldest = younger;
    else older.younger = younger;
    if (younger === undefined) this.youngest = older;
    else younger.older = older;
    entry.older = undefined;
    entry.younger = undefined;
  }

  /** Moves `entry` (in the list) to the young end. */
  moveToYoungEnd(entry: Entry): void {
    if (entry === this.youngest) return;
    this.unlink(entry);
    this.append(entry);
  }
}

/** The per-limit states of `entry` (its inline fixed window as a one-element list). */
function statesOf(entry: Entry | undefined): unknown[] | undefined {
  if (entry === undefined) return undefined;
  return entry.states ?? [{ windowStart: entry.windowStart, count: entry.count }];
}

/** An entry older than this (ms since it last moved) is moved to the young end when used. */
const refreshAfterMs = 1_000;
/** Expired entries looked at (from the old end) per insertion: cleanup without timers. */
const sweepPerInsert = 2;
/**
 * Entries looked at (from the old end, over the namespaces) for an expired one before a live one
 * is evicted at the cap: entries expire out of order (a drained bucket is kept longer than a
 * barely used one, a block outlives its window), and a live key evicted loses its count.
 */
const evictionScan = 16;

/**
 * In-process store. Bounded: at most `maxKeys` entries of counters, plus one per key blocked now
 * up to `maxBlockedKeys` (see #evictOldest); expired entries are swept a few at a time on
 * insertion and the oldest are evicted at the cap, so a flood of new keys cannot grow memory. No timer per key (no timer at all). Decisions are synchronous.
 * A subclass that overrides `consumeSingle` sees every single-limit check: the limiter's hot
 * path (`consumeHot`) is off for its instances.
 */
export class MemoryStore implements RateLimitStore {
  readonly kind = 'memory';
  readonly remote = false;
  /**
   * Entries by namespace, then key: the limiter passes its rule's namespace and the caller's key
   * as they are, so no key string is built (and hashed afresh) per check.
   */
  readonly #spaces = new Map<string, KeySpace>();
  /** Every entry, from the least to the most recently moved (see {@link RecencyList}). */
  readonly #order = new RecencyList();
  #size = 0;
  /**
   * The entries counted as blocked: their block was live when last written (see #syncPin), until
   * it is found to have ended or the entry goes, so an upper bound of the live blocks. A set, not
   * a flag per entry: entries without a block (nearly all) pay nothing for it.
   */
  readonly #pinned = new Set<Entry>();
  /** The namespace last looked up and its entries (the limiter asks for the same one mostly). */
  #lastNamespace = '';
  #lastEntries: KeySpace | undefined;
  /**
   * The token {@link consumeHot} was last given and its namespace's entries: tokens compare by
   * reference, where namespaces, strings, would cost V8 a call per check (decision 009).
   */
  #hotToken: HotSpaceToken | undefined;
  #hotEntries: KeySpace | undefined;
  readonly #maxKeys: number;
  readonly #maxBlocked: number;
  readonly #clock: Clock;
  /** Recorded namespaces by rule, each with the time its keys may live until (see {@link recordNamespace}). */
  readonly #records = new Map<string, Map<string, number>>();

  constructor(options: MemoryStoreOptions = {}) {
    const parsed = parseOptions('MemoryStore', memoryStoreOptionsSchema, options);
    this.#maxKeys = parsed.maxKeys;
    this.#maxBlocked = parsed.maxBlockedKeys ?? Math.ceil(parsed.maxKeys / 10);
    this.#clock = parsed.clock ?? coarseClock;
    // A subclass that overrides consumeSingle (to audit, or to decide otherwise) must see every
    // single-limit check, and the limiter's hot path would answer a live key around it: such a
    // store has no hot path (its limiter asks consumeSingle). Decided once here, by an own
    // property on that instance only, so the built-in store's consumeHot costs nothing more
    // per check (decision 009).
    if (this.consumeSingle !== MemoryStore.prototype.consumeSingle) {
      Object.defineProperty(this, 'consumeHot', { value: noHotPath });
    }
  }

  /** Keys currently held (expired ones may linger until swept). */
  get size(): number {
    return this.#size;
  }

  /** Applies `costs` as consecutive requests of `key` (see {@link RateLimitStore.consume}). */
  consume(
    key: string,
    limits: readonly LimitPolicy[],
    costs: readonly number[],
    block: AutoBlockPolicy | undefined,
  ): ConsumeOutcome[] {
    return costs.map((cost) => this.consumeOne(key, limits, cost, block));
  }

  /** One `consume` per request (memory needs no batching; offered for the conformance suite). */
  async consumeMany(
    requests: readonly ConsumeRequest[],
    block: AutoBlockPolicy | undefined,
  ): Promise<ConsumeOutcome[][]> {
    return requests.map((request) => this.consume(request.key, request.limits, request.costs, block));
  }

  /** One request of `cost` points; the synchronous fast path used by the limiter. */
  consumeOne(
    key: string,
    limits: readonly LimitPolicy[],
    cost: number,
    block: AutoBlockPolicy | undefined,
    namespace = '',
  ): ConsumeOutcome {
    const now = this.#clock.now();
    const entries = this.#entriesOf(namespace);
    const entry = this.#live(entries, key, now);
    if (block === undefined && limits.length === 1 && entry?.block === undefined) {
      const policy = limits[0]!;
      const at = countingTime(policy, namespace, key, now);
      return { decisions: [this.#consumeSingle(entries, key, entry, policy, cost, now, at)], blockedMs: 0 };
    }
    // A block recorded by a clock that was ahead lasts its own length from now (boundedBlock).
    if (entry?.block !== undefined) entry.block = boundedBlock(entry.block, now);
    // A block is honoured with or without auto-block (a manual one); only auto-block records violations.
    const blockedMs = blockRemainingMs(entry?.block, now);
    const previous = statesOf(entry);
    const decisions: Decision[] = new Array(limits.length);
    const states: unknown[] = new Array(limits.length);
    let allowed = blockedMs === 0;
    for (let index = 0; index < limits.length; index += 1) {
      const policy = limits[index]!;
      // Blocked, the request is counted nowhere, but stepped with its cost all the same: its
      // retry time is when the limit would admit it, which may be after the block ends.
      const step = algorithms[policy.algorithm].step(
        stateOf(policy.algorithm, previous?.[index]),
        countingTime(policy, namespace, key, now),
        cost,
        policy,
      );
      decisions[index] = step.decision;
      states[index] = step.state;
      if (!step.decision.allowed) allowed = false;
    }
    if (blockedMs > 0) {
      // As a refusal (and the one that started the block) answers: limits that would admit the
      // request report their unspent state, and every limit refuses until the later of the
      // block's end and its own retry time, when the request would really be admitted.
      for (let index = 0; index < limits.length; index += 1) {
        let decision = decisions[index]!;
        if (decision.allowed) {
          const policy = limits[index]!;
          decision = algorithms[policy.algorithm].step(
            stateOf(policy.algorithm, previous?.[index]),
            countingTime(policy, namespace, key, now),
            0,
            policy,
          ).decision;
          decisions[index] = decision;
        }
        decision.allowed = false;
        decision.retryAfterMs = Math.max(decision.retryAfterMs, blockedMs);
      }
      this.#touch(entry!, now);
      return { decisions, blockedMs };
    }
    if (allowed) {
      let ttl = 0;
      for (let index = 0; index < limits.length; index += 1) {
        const policy = limits[index]!;
        ttl = Math.max(
          ttl,
          algorithms[policy.algorithm].ttlMs(
            states[index],
            countingTime(policy, namespace, key, now),
            policy,
          ),
        );
      }
      // A manual block that has ended is dropped, so the key's checks take the fast path again.
      const blockState = block === undefined ? undefined : entry?.block;
      // An offender's record (its offences, its violations) outlives the counters: kept as a
      // refusal keeps it, or an admitted request in a short window would forget the offences.
      if (blockState !== undefined && block !== undefined)
        ttl = Math.max(ttl, blockKeptUntil(blockState, block) - now);
      this.#write(entries, key, entry, states, blockState, now, ttl);
      return { decisions, blockedMs: 0 };
    }
    // Refused: nothing is counted, so limits that would have admitted report their unspent state.
    for (let index = 0; index < limits.length; index += 1) {
      if (!decisions[index]!.allowed) continue;
      const policy = limits[index]!;
      decisions[index] = algorithms[policy.algorithm].step(
        stateOf(policy.algorithm, previous?.[index]),
        countingTime(policy, namespace, key, now),
        0,
        policy,
      ).decision;
    }
    if (block === undefined) {
      if (entry !== undefined) this.#touch(entry, now);
    } else {
      const blockState = recordViolation(entry?.block, now, block);
      const keepUntil = Math.max(entry?.expiresAt ?? 0, blockKeptUntil(blockState, block));
      this.#write(entries, key, entry, previous ?? [], blockState, now, keepUntil - now);
      // The refusal that starts a block answers as the block's checks do: every limit refused
      // until it ends (a limit with room left would tell the client it may go on).
      const nowBlocked = blockRemainingMs(blockState, now);
      if (nowBlocked > 0) {
        for (const decision of decisions) {
          decision.allowed = false;
          decision.retryAfterMs = Math.max(decision.retryAfterMs, nowBlocked);
        }
        return { decisions, blockedMs: nowBlocked };
      }
    }
    return { decisions, blockedMs: 0 };
  }

  /**
   * One request of `cost` points against a single limit, without auto-block: the limiter's fast
   * path. Same result as {@link consumeOne} with `[policy]` and no block, but returns the limit's
   * decision alone, and the limit's state is updated in place (no state object per check).
   * Returns `undefined`, counting nothing, when the key is blocked (a manual block): the caller
   * then asks {@link consumeOne}, which answers `blocked`.
   */
  consumeSingle(key: string, policy: LimitPolicy, cost: number, namespace = ''): Decision | undefined {
    const now = this.#clock.now();
    const entries = this.#entriesOf(namespace);
    const entry = this.#live(entries, key, now);
    if (entry !== undefined && entry.block !== undefined && entry.block.blockedUntil > now) return undefined;
    // A limit without a window offset (every one by default) counts at `now` itself.
    const at = policy.windowOffsetMs === undefined ? now : now - windowOffsetOf(policy, namespace + key);
    return this.#consumeSingle(entries, key, entry, policy, cost, now, at);
  }

  /**
   * {@link consumeSingle} of one point, for the hot case only: a live key whose fixed window lives
   * inline, with no block, checked again within its window (at least 1 ms before its end), below
   * its limit, and moved to the young end of the eviction order at most a second ago. Returns
   * `undefined`, counting nothing and making nothing (not even a namespace), for any other case
   * (a new, expired or blocked key, a namespace the store does not hold, a new window, a refusal,
   * another algorithm, a move due): the caller then asks consumeSingle. The same decision and the
   * same state left behind as consumeSingle's (property-tested in `test/fast-path.test.ts`, and
   * the limiter's check() against checkSync() in `test/hot-path-review.test.ts`), without the
   * general window arithmetic: a stored
   * window start is always aligned (`windowStartOf`), so a time inside it counts in it. `space`
   * names the namespace (by its `namespace`) and is compared by reference: give the same token
   * for a namespace each time, and `policy` must be the one every check of the namespace uses (a
   * limiter's namespace carries its limits' fingerprint) and have no `windowOffsetMs` (the
   * window arithmetic here is on the epoch's grid: the limiter, choosing at construction, never
   * takes this path for a limit with an offset). Small, so that V8 inlines it into the
   * limiter's check(); the instruction counts that chose this are in decision 009.
   * @internal the limiter's fast path, not part of the store interface.
   */
  consumeHot(key: string, policy: LimitPolicy, space: HotSpaceToken): Decision | undefined {
    let entries = this.#hotEntries;
    if (space !== this.#hotToken || entries === undefined) {
      // Looked up, never made: a namespace the store does not hold has no key to take, and one
      // made here would outlive a check that is then refused (an empty key: #decide's error),
      // changing the order in which keys of the namespaces are evicted.
      entries = this.#spaces.get(space.namespace);
      if (entries === undefined) return undefined;
      this.#hotToken = space;
      this.#hotEntries = entries;
    }
    const entry = entries.get(key);
    if (entry === undefined || entry.states !== undefined || entry.block !== undefined) return undefined;
    const now = this.#clock.now();
    const windowMs = policy.windowMs;
    const start = entry.windowStart;
    const end = start + windowMs;
    const limit = policy.limit;
    const resetMs = end - now;
    // Written so that a NaN start (no window yet) fails it too. An admitted check keeps the key
    // for the rest of its window, at least 1 ms (fixedWindowTtl, #extend): until
    // `now + max(resetMs, 1)`. Taken only when that is the entry's expiry already (as after an
    // earlier admitted check of this window, at least 1 ms before its end), so nothing is written
    // but the count: a new expiry would be a new heap number per check, stored with a write
    // barrier into an old entry (a third of the check's instructions). Not `expiresAt === end`
    // alone: the general path keeps a key checked at a fractional time less than 1 ms before
    // its window's end past that end (test/hot-path-review.test.ts). The expiry is compared
    // with the general path's own expression, so no rounding can tell the two apart.
    if (
      !(
        now >= start &&
        resetMs >= 1 &&
        start >= 0 &&
        entry.expiresAt === now + resetMs &&
        entry.count < limit &&
        now - entry.movedAt <= refreshAfterMs
      ) ||
      policy.algorithm !== 'fixed-window'
    )
      return undefined;
    const used = entry.count + 1;
    entry.count = used;
    // fixedWindowInPlace's own decision (one hidden class for both paths).
    return fixedWindowAdmitted(policy, used, resetMs);
  }

  /** The entries of `namespace` (created when missing), remembering the last one asked for. */
  #entriesOf(namespace: string): KeySpace {
    if (namespace === this.#lastNamespace && this.#lastEntries !== undefined) return this.#lastEntries;
    let entries = this.#spaces.get(namespace);
    if (entries === undefined) {
      entries = new KeySpace(namespace);
      this.#spaces.set(namespace, entries);
    }
    this.#lastNamespace = namespace;
    this.#lastEntries = entries;
    return entries;
  }

  /** The entry of `key` unless it has expired (an expired one is dropped). */
  #live(entries: KeySpace, key: string, now: number): Entry | undefined {
    const entry = entries.get(key);
    if (entry === undefined || entry.expiresAt > now) return entry;
    this.#remove(entries, key, entry);
    return undefined;
  }

  /**
   * The common case (one limit, no auto-block) without the general path's arrays. The limit counts
   * at `at`: `now`, shifted by its window offset when it has one (see window-offset.ts); entries
   * keep and expire by `now`.
   */
  #consumeSingle(
    entries: KeySpace,
    key: string,
    entry: Entry | undefined,
    policy: LimitPolicy,
    cost: number,
    now: number,
    at: number,
  ): Decision {
    // A fixed window lives inline in its entry, unless the general path gave the key `states`.
    if (policy.algorithm === 'fixed-window' && entry?.states === undefined) {
      if (entry === undefined) {
        const fresh = newEntry(key, entries, undefined, undefined, now);
        const decision = fixedWindowInPlace(fresh, at, cost, policy);
        if (decision.allowed) this.#insert(entries, key, fresh, now, fixedWindowTtl(fresh, at, policy));
        return decision;
      }
      const decision = fixedWindowInPlace(entry, at, cost, policy);
      if (decision.allowed) this.#extend(entry, now, fixedWindowTtl(entry, at, policy));
      else this.#touch(entry, now);
      return decision;
    }
    return this.#consumeSingleRecord(entries, key, entry, policy, cost, now, at);
  }

  /**
   * {@link #consumeSingle} for a limit kept in a state record (every algorithm but the inline
   * fixed window). A method of its own so that the fixed window's path stays small, which V8
   * inlines into the limiter's check more readily (an A/B of the two layouts was within noise).
   */
  #consumeSingleRecord(
    entries: KeySpace,
    key: string,
    entry: Entry | undefined,
    policy: LimitPolicy,
    cost: number,
    now: number,
    at: number,
  ): Decision {
    const inPlace = inPlaceAlgorithms[policy.algorithm];
    const kept = stateOf(policy.algorithm, entry?.states?.[0]);
    if (kept !== undefined) {
      const decision = inPlace.step(kept, at, cost, policy);
      if (decision.allowed) this.#extend(entry!, now, inPlace.ttlMs(kept, at, policy));
      else this.#touch(entry!, now);
      return decision;
    }
    // The key's first admitted request allocates its state record; later checks update it in place.
    const fresh = inPlace.newState(at, policy);
    const decision = inPlace.step(fresh, at, cost, policy);
    if (decision.allowed) this.#keep(entries, key, entry, fresh, now, inPlace.ttlMs(fresh, at, policy));
    return decision;
  }

  /** Stores the single limit's `state` of `key` for `ttlMs` (inserting or refreshing the entry). */
  #keep(
    entries: KeySpace,
    key: string,
    entry: Entry | undefined,
    state: unknown,
    now: number,
    ttlMs: number,
  ): void {
    if (entry === undefined) {
      this.#write(entries, key, undefined, [state], undefined, now, ttlMs);
    } else {
      if (entry.states === undefined) entry.states = [state];
      else entry.states[0] = state;
      this.#extend(entry, now, ttlMs);
    }
  }

  /**
   * Applies `adjustment` to `key`'s limits (in `namespace`) and returns what a cost-0 check would
   * now report (see {@link RateLimitStore.adjust}). Checks honour a block with or without an
   * auto-block policy.
   */
  adjust(
    key: string,
    limits: readonly LimitPolicy[],
    adjustment: StoreAdjustment,
    block: AutoBlockPolicy | undefined,
    _options?: ConsumeOptions,
    namespace = '',
  ): ConsumeOutcome {
    const now = this.#clock.now();
    const entries = this.#entriesOf(namespace);
    const entry = this.#live(entries, key, now);
    let states = statesOf(entry);
    if (entry?.block !== undefined) entry.block = boundedBlock(entry.block, now);
    let blockState = entry?.block;
    const operation = adjustment.operation;
    if (operation === 'refund' || operation === 'penalize') {
      const next: unknown[] = new Array(limits.length);
      let ttl = 0;
      for (let index = 0; index < limits.length; index += 1) {
        const policy = limits[index]!;
        const at = countingTime(policy, namespace, key, now);
        next[index] = adjusters[policy.algorithm][operation](
          stateOf(policy.algorithm, states?.[index]),
          at,
          adjustment.points,
          policy,
        );
        if (next[index] !== undefined)
          ttl = Math.max(ttl, algorithms[policy.algorithm].ttlMs(next[index], at, policy));
      }
      // A refund of a key never seen leaves nothing to keep.
      if (entry !== undefined || next.some((state) => state !== undefined)) {
        states = next;
        // A block outlives the counters: the entry is kept as long as either needs it.
        const kept = Math.max(ttl, (entry?.expiresAt ?? now) - now);
        if (
          entry !== undefined &&
          entry.states === undefined &&
          limits.length === 1 &&
          limits[0]!.algorithm === 'fixed-window' &&
          blockState === undefined
        ) {
          // The single fixed window's inline state: written back inline, so the fast path reads it.
          const state = next[0] as FixedWindowState;
          entry.windowStart = state.windowStart;
          entry.count = state.count;
          this.#extend(entry, now, kept);
        } else this.#write(entries, key, entry, next, blockState, now, kept);
      }
    } else if (operation === 'block' || operation === 'unblock') {
      const current = blockState ?? emptyBlockState;
      // Without auto-block nothing else lives in the block state: an unblock drops it, so that
      // the key's checks take the single-limit fast path again. With auto-block, an unblock ends
      // the block now and keeps the offences: a repeat offence still grows the next block, and
      // `forgetAfterMs` counts from now (a block that had already ended keeps its end).
      blockState =
        operation === 'block'
          ? { ...current, blockedUntil: now + adjustment.durationMs, blockedAt: now }
          : block === undefined
            ? undefined
            : { ...current, violations: 0, earlier: [], blockedUntil: Math.min(current.blockedUntil, now) };
      const keepUntil = Math.max(
        entry?.expiresAt ?? now,
        (blockState?.blockedUntil ?? 0) + (block?.forgetAfterMs ?? 0),
      );
      this.#write(entries, key, entry, states ?? [], blockState, now, keepUntil - now);
    }
    return peekOutcome(limits, states, blockState, now, namespace + key);
  }

  /**
   * Forgets `key` (in `namespace`, which the limiter uses for its rules); true when it had state
   * that had not expired.
   */
  async reset(key: string, namespace = ''): Promise<boolean> {
    const space = this.#spaces.get(namespace);
    const entry = space?.get(key);
    if (entry === undefined) return false;
    this.#remove(space!, key, entry);
    return entry.expiresAt > this.#clock.now();
  }

  /**
   * Forgets every key whose full name (`namespace + key`, as the limiter names its rules' keys)
   * starts with one of `namespaces` (see {@link RateLimitStore.resetAll}); every key when
   * `namespaces` is undefined. A store shared by several limiters keeps the others' keys.
   */
  async resetAll(namespaces?: readonly string[]): Promise<void> {
    this.resetAllSync(namespaces);
  }

  /**
   * Records that `rule`'s keys are written under `namespace` and may live `ttlMs` from now (see
   * {@link RateLimitStore.recordNamespace}); a record already kept longer stays.
   */
  async recordNamespace(rule: string, namespace: string, ttlMs: number): Promise<void> {
    this.recordNamespaceSync(rule, namespace, ttlMs);
  }

  /** {@link recordNamespace}, synchronously (the limiter's own call). */
  recordNamespaceSync(rule: string, namespace: string, ttlMs: number): void {
    let records = this.#records.get(rule);
    if (records === undefined) {
      records = new Map();
      this.#records.set(rule, records);
    }
    const until = this.#clock.now() + ttlMs;
    if ((records.get(namespace) ?? Number.NEGATIVE_INFINITY) < until) records.set(namespace, until);
  }

  /** The namespaces recorded for `rule` and not expired (see {@link RateLimitStore.recordedNamespaces}). */
  async recordedNamespaces(rule: string): Promise<string[]> {
    return this.recordedNamespacesSync(rule);
  }

  /** {@link recordedNamespaces}, synchronously; expired records are dropped. */
  recordedNamespacesSync(rule: string): string[] {
    const records = this.#records.get(rule);
    if (records === undefined) return [];
    const now = this.#clock.now();
    for (const [namespace, until] of records) if (until <= now) records.delete(namespace);
    if (records.size === 0) this.#records.delete(rule);
    return [...records.keys()];
  }

  /** {@link resetAll}, synchronously (the limiter's own call). */
  resetAllSync(namespaces?: readonly string[]): void {
    // Every key gone: no namespace has keys to find any more.
    if (namespaces === undefined) this.#records.clear();
    for (const [space, entries] of this.#spaces) {
      if (namespaces === undefined || namespaces.some((namespace) => space.startsWith(namespace))) {
        // The whole namespace goes (the limiter's rule namespaces are whole spaces).
        for (const entry of entries.values()) {
          this.#order.unlink(entry);
          if (entry.block !== undefined) this.#pinned.delete(entry);
        }
        this.#size -= entries.size;
        this.#dropSpace(space, entries);
        continue;
      }
      // Keys given with their namespace in them (a space whose name starts a namespace: the
      // default '', where a caller of the store interface keeps its full keys).
      const within = namespaces.filter((namespace) => namespace.startsWith(space));
      if (within.length === 0) continue;
      for (const [key, entry] of entries) {
        const name = space + key;
        if (within.some((namespace) => name.startsWith(namespace))) this.#remove(entries, key, entry);
      }
    }
  }

  /** Drops every entry. */
  async close(): Promise<void> {
    this.#spaces.clear();
    this.#records.clear();
    this.#lastEntries = undefined;
    this.#hotEntries = undefined;
    this.#size = 0;
    this.#pinned.clear();
  }

  /** Stores every limit's `states` and the `block` of `key` for `ttlMs` (inserting or refreshing). */
  #write(
    entries: KeySpace,
    key: string,
    entry: Entry | undefined,
    states: unknown[],
    block: BlockState | undefined,
    now: number,
    ttlMs: number,
  ): void {
    if (entry === undefined) {
      this.#insert(entries, key, newEntry(key, entries, states, block, now), now, ttlMs);
      return;
    }
    entry.states = states;
    // An entry with no block before or now is not counted, and stays so: no set to look into.
    const had = entry.block;
    entry.block = block;
    if (block !== undefined || had !== undefined) this.#syncPin(entry, now);
    this.#extend(entry, now, ttlMs);
  }

  /** Counts `entry` among the blocked keys while its block is live, and no longer once it ended. */
  #syncPin(entry: Entry, now: number): void {
    if (entry.block !== undefined && entry.block.blockedUntil > now) this.#pinned.add(entry);
    else this.#pinned.delete(entry);
  }

  /** Forgets the namespace `name` and its `entries` (the caller uncounts them), and the caches of it. */
  #dropSpace(name: string, entries: KeySpace): void {
    this.#spaces.delete(name);
    if (entries === this.#lastEntries) this.#lastEntries = undefined;
    if (entries === this.#hotEntries) this.#hotEntries = undefined;
  }

  /** Drops `entry` of `key` from `space`, uncounting it. */
  #remove(space: KeySpace, key: string, entry: Entry): void {
    space.delete(key);
    this.#order.unlink(entry);
    this.#size -= 1;
    // Only an entry with a block can be counted (a block is dropped through #write, which syncs).
    if (entry.block !== undefined) this.#pinned.delete(entry);
  }

  /**
   * How many keys the store holds before it evicts: `maxKeys` for counters, and as many more as
   * keys are blocked, up to `maxBlockedKeys` (their room apart).
   */
  #capacity(): number {
    return this.#maxKeys + Math.min(this.#pinned.size, this.#maxBlocked);
  }

  /** Adds the new `entry` of `key`, kept for `ttlMs` (at least 1 ms), making room first. */
  #insert(entries: KeySpace, key: string, entry: Entry, now: number, ttlMs: number): void {
    this.#makeRoom(entries, now);
    entry.expiresAt = now + Math.max(ttlMs, 1);
    entries.set(key, entry);
    this.#order.append(entry);
    this.#size += 1;
    if (entry.block !== undefined) this.#syncPin(entry, now);
  }

  /**
   * Keeps `entry` for `ttlMs` more (at least 1 ms) and, now and then, moves it to the young end
   * of its namespace's list.
   */
  #extend(entry: Entry, now: number, ttlMs: number): void {
    entry.expiresAt = now + Math.max(ttlMs, 1);
    this.#touch(entry, now);
  }

  /**
   * Now and then moves `entry` to the young end of its namespace's list, so busy keys are the
   * last evicted. A refused or blocked key is busy too: evicting it would hand its client a fresh
   * quota.
   */
  #touch(entry: Entry, now: number): void {
    if (now - entry.movedAt > refreshAfterMs) {
      entry.movedAt = now;
      this.#order.moveToYoungEnd(entry);
    }
  }

  /**
   * Sweeps a few expired entries from the old end and, at the cap, drops an expired entry if a
   * short scan finds one, else evicts the least recently used, of any namespace.
   */
  #makeRoom(entries: KeySpace, now: number): void {
    for (let looked = 0; looked < sweepPerInsert; looked += 1) {
      const oldest = this.#order.oldest;
      if (oldest === undefined || oldest.expiresAt > now) break;
      this.#evict(oldest, entries);
    }
    const capacity = this.#capacity();
    if (this.#size < capacity) return;
    // At the cap, an expired entry makes room for the new one. Over it (blocked keys were passed
    // over), counters are evicted down to under the cap: one for one, the excess would stay, and
    // grow each time the oldest are blocked keys again.
    if (this.#size === capacity && this.#dropExpired(entries, now)) return;
    this.#evictOldest(entries, now);
  }

  /**
   * Drops `entry`, and its namespace when that leaves it empty, unless it is `inserting`'s (the
   * namespace a key is being added to).
   */
  #evict(entry: Entry, inserting: KeySpace): void {
    const space = entry.space;
    this.#remove(space, entry.key, entry);
    if (space.size === 0 && space !== inserting && this.#spaces.get(space.name) === space)
      this.#dropSpace(space.name, space);
  }

  /**
   * Evicts the least recently used entries of the store until it is under its capacity. Keys
   * blocked now are kept apart, in room of their own: `maxKeys` holds the counters, and the store
   * as many keys more as are blocked, up to `maxBlockedKeys` (an abuser who waits out a long block
   * quietly would otherwise get a fresh quota from any flood of other keys, and a flood of blocked
   * keys would otherwise squeeze the counters out). While the blocked keys fit in their room, one
   * found at the old end is moved to the young end instead of evicted, up to
   * {@link evictionScan} per call (bounded work, as the scan for an expired entry): a call that
   * finds only blocked keys leaves the store a key over its capacity, and the next calls move the
   * next 16, until counters are the oldest again, which are evicted down to the capacity at once.
   * At `maxKeys + maxBlockedKeys`, the hard cap, it moves as many as it takes to reach a counter.
   * Past `maxBlockedKeys` blocked keys (a flood of keys that all get blocked), the least recently
   * used of them go as counters do.
   */
  #evictOldest(inserting: KeySpace, now: number): void {
    const hardCap = this.#maxKeys + this.#maxBlocked;
    let spared = 0;
    // The oldest each time: the one looked at is either dropped or moved to the young end.
    for (let entry = this.#order.oldest; entry !== undefined; entry = this.#order.oldest) {
      if (this.#size < this.#capacity()) return;
      if (entry.block !== undefined && this.#pinned.has(entry)) {
        // A block that ended is counted no longer: the entry is a counter like any other.
        this.#syncPin(entry, now);
        if (this.#pinned.has(entry) && this.#pinned.size <= this.#maxBlocked) {
          // Each entry once at most: a store of blocked keys alone is left over its capacity.
          if ((spared >= evictionScan && this.#size < hardCap) || spared >= this.#size) return;
          spared += 1;
          this.#order.moveToYoungEnd(entry);
          continue;
        }
      }
      this.#evict(entry, inserting);
    }
  }

  /** Drops the first expired entry among the store's oldest {@link evictionScan}; false when there is none. */
  #dropExpired(inserting: KeySpace, now: number): boolean {
    let looked = 0;
    for (
      let entry = this.#order.oldest;
      entry !== undefined && looked < evictionScan;
      entry = entry.younger
    ) {
      looked += 1;
      if (entry.expiresAt <= now) {
        this.#evict(entry, inserting);
        return true;
      }
    }
    return false;
  }
}

/**
 * Until when an auto-block record must be kept: while its offences still count (`forgetAfterMs`
 * after its last block ended) and while its violations' window runs.
 */
function blockKeptUntil(state: BlockState, policy: AutoBlockPolicy): number {
  return Math.max(state.blockedUntil + policy.forgetAfterMs, violationsCountUntil(state, policy));
}

/**
 * What a cost-0 check of `states` of the store key `storeKey` reports at `now` (a blocked key is
 * refused until the block ends).
 */
function peekOutcome(
  limits: readonly LimitPolicy[],
  states: unknown[] | undefined,
  block: BlockState | undefined,
  now: number,
  storeKey: string,
): ConsumeOutcome {
  const blockedMs = blockRemainingMs(block, now);
  const decisions = limits.map((policy, index) => {
    const decision = algorithms[policy.algorithm].step(
      stateOf(policy.algorithm, states?.[index]),
      countingTime(policy, '', storeKey, now),
      0,
      policy,
    ).decision;
    if (blockedMs > 0) {
      decision.allowed = false;
      decision.retryAfterMs = Math.max(decision.retryAfterMs, blockedMs);
    }
    return decision;
  });
  return { decisions, blockedMs };
}

/**
 * The time `policy` counts at for `key` of the namespace `namespace` at `now`: `now`, shifted by
 * the limit's window offset when it has one (see window-offset.ts; the offset of `'key'` is of the
 * store key, `namespace + key`, as every store names it).
 */
function countingTime(policy: LimitPolicy, namespace: string, key: string, now: number): number {
  return policy.windowOffsetMs === undefined ? now : now - windowOffsetOf(policy, namespace + key);
}

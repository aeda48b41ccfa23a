import type { Cluster, Redis } from 'ioredis';
import { cutHistory } from '../error-history.js';
import { MessageTooLargeError } from '../errors.js';
import type { ChildFailurePolicy } from '../job-options.js';
import type { JobRecord } from '../job-record.js';
import type { OversizedSettlement, Settlement } from '../provider.js';
import { encodeRecord } from './record-codec.js';

/** Redis's smallest `proto-max-bulk-len` (1 MiB): an argument this long fits every server. */
export const minArgumentBytes = 1024 * 1024;
/** Redis's default `proto-max-bulk-len` (512 MiB), assumed where `CONFIG GET` is refused. */
export const defaultArgumentBytes = 512 * 1024 * 1024;

/** What every settle entry carries (the keys the Redis scripts read: short, one per entry). */
interface SettleEntryBase {
  /** The job's id. */
  id: string;
  /** The lease the try ran under: a settlement of another lease is refused (stale). */
  l: string | undefined;
  /** The job's group (RedisProvider: its fair-dispatch bookkeeping). */
  g?: string;
  /** A flow child's parent id, and `pol` its `onChildFailure` policy. */
  par?: string;
  pol?: ChildFailurePolicy;
}

/** A completed try. */
export interface CompleteEntry extends SettleEntryBase {
  k: 'c';
  /** The result as JSON text (absent for `undefined`). */
  r?: string;
  /** `removeOnComplete`: the job is deleted rather than kept as completed. */
  rm?: true;
}

/** A failed try: a retry at `at`, or the dead-letter queue without it. */
export interface FailEntry extends SettleEntryBase {
  k: 'f';
  /** The record to store (encoded), its error history holding this failure. */
  rec: string;
  /** The job's priority (RedisProvider: where the retry goes in the waiting set). */
  pr?: number;
  /** When the retry runs (ms since epoch); absent: dead-lettered. */
  at?: number;
  /** The newest error history entry as JSON (what a flow parent records for this child). */
  err?: string;
}

/** A settle entry as the Redis scripts take it (`exchange.lua`), told apart by `k`. */
export type SettleEntry = CompleteEntry | FailEntry;

/**
 * Builds one settlement's entry, storing `record` (the settlement's own, or one whose error
 * history {@link fitFailure} cut).
 */
export type SettleEntryBuilder = (settlement: Settlement, record: JobRecord) => SettleEntry;

/**
 * One settlement's entry as the `exchange.lua` scripts take it. `forProvider`: the
 * RedisProvider's (the job's group and priority ride along, the record is stored as given); else
 * the RabbitMQ state store's (no group or priority; a retry's record is stored with its new
 * `availableAt`, as the store runs it again at that time).
 */
export function buildSettleEntry(
  settlement: Settlement,
  record: JobRecord,
  forProvider: boolean,
): SettleEntry {
  const base: Pick<SettleEntry, 'id' | 'l' | 'g' | 'par' | 'pol'> = { id: record.id, l: record.lease };
  if (forProvider && record.group !== undefined) base.g = record.group;
  if (record.parent) {
    base.par = record.parent.id;
    base.pol = record.parent.onChildFailure;
  }
  if (settlement.kind === 'complete') {
    const entry: CompleteEntry = { ...base, k: 'c' };
    if (settlement.result !== undefined) entry.r = JSON.stringify(settlement.result);
    if (record.removeOnComplete) entry.rm = true;
    return entry;
  }
  const stored =
    forProvider || settlement.retryAt === null ? record : { ...record, availableAt: settlement.retryAt };
  const entry: FailEntry = { ...base, k: 'f', rec: encodeRecord(stored) };
  if (forProvider) entry.pr = record.priority;
  if (settlement.retryAt !== null) entry.at = settlement.retryAt;
  const last = record.errors.at(-1);
  if (last) entry.err = JSON.stringify(last);
  return entry;
}

/** The cuts of a failure's error history, gentlest first, tried until its entry fits. */
const historyCuts = [
  { keep: Number.POSITIVE_INFINITY, maxChars: 1_024 },
  { keep: 1, maxChars: 1_024 },
  { keep: 1, maxChars: 0 },
] as const;

/**
 * A failure's entry that fits an argument of `maxBytes`: `entry` when it does, else rebuilt with
 * the record's error history cut step by step (every message to 1,024 characters, then only the
 * newest entry, then its message to nothing but the marker), each cut saying so. A record near
 * the limit at add, its error history added, was over it: Redis refused every exchange carrying
 * it, and the worker settled nothing else. Still over after the last cut (the job's own data
 * is), it is returned as cut and sent alone. Pure.
 */
export function fitFailure(
  settlement: Settlement,
  entry: SettleEntry,
  build: SettleEntryBuilder,
  maxBytes: number,
): SettleEntry {
  let fitted = entry;
  for (const { keep, maxChars } of historyCuts) {
    if (Buffer.byteLength(JSON.stringify(fitted)) + 2 <= maxBytes) return fitted;
    const errors = cutHistory(settlement.record.errors, keep, maxChars);
    fitted = build(settlement, { ...settlement.record, errors });
  }
  return fitted;
}

/** What {@link packSettlements} returns. */
export interface SettleBatches {
  /** JSON arrays of entries, each at most `maxBytes` bytes (UTF-8), in the entries' order. */
  batches: string[];
  /** Completions whose entry alone is over `maxBytes`: left out of every batch. */
  oversized: OversizedSettlement[];
}

/**
 * The settle entries of one exchange as script arguments Redis takes (`proto-max-bulk-len`, one
 * argument each). Fast path: the whole array as one argument when it is surely small enough
 * (3 UTF-8 bytes at most per UTF-16 unit) or measured so. Else the entries are packed greedily
 * into arrays of at most `maxBytes`; a completion whose entry alone is over it is left out and
 * named in `oversized` (its try is to fail). A failure's entry is never left out (it was fitted
 * first, {@link fitFailure}): it is sent, alone if need be.
 * Pure: the limit comes from the caller.
 */
export function packSettlements(entries: readonly SettleEntry[], maxBytes: number): SettleBatches {
  const whole = entries.length === 0 ? '[]' : JSON.stringify(entries);
  if (whole.length * 3 <= maxBytes || Buffer.byteLength(whole) <= maxBytes) {
    return { batches: [whole], oversized: [] };
  }
  const batches: string[] = [];
  const oversized: OversizedSettlement[] = [];
  let parts: string[] = [];
  let size = 2; // the brackets
  for (const entry of entries) {
    const encoded = JSON.stringify(entry);
    const bytes = Buffer.byteLength(encoded);
    if (bytes + 2 > maxBytes && entry.k === 'c') {
      oversized.push({ id: entry.id, bytes, maxBytes });
      continue;
    }
    const added = bytes + (parts.length > 0 ? 1 : 0);
    if (parts.length > 0 && size + added > maxBytes) {
      batches.push(`[${parts.join(',')}]`);
      parts = [];
      size = 2;
    }
    parts.push(encoded);
    size += bytes + (parts.length > 1 ? 1 : 0);
  }
  if (parts.length > 0 || batches.length === 0) batches.push(`[${parts.join(',')}]`);
  return { batches, oversized };
}

/** The settle arguments of one exchange, as {@link ArgumentLimit.pack} splits them. */
export interface SettleArguments {
  /** The argument of the exchange's own call (the one that also fetches and judges deliveries). */
  last: string;
  /** Arguments to send before it, each in a call that only settles (empty unless over the limit). */
  earlier: string[];
  /** Completions left out of every argument (each alone over the limit): their tries are to fail. */
  oversized?: OversizedSettlement[];
}

/**
 * The largest argument a Redis server takes, read once (`CONFIG GET proto-max-bulk-len`) and only
 * when an argument may be over {@link minArgumentBytes}; {@link defaultArgumentBytes} where the
 * command is refused (managed Redis often renames `CONFIG`). `configured` overrides both.
 */
export class ArgumentLimit {
  readonly #redis: Redis | Cluster;
  #bytes: Promise<number> | undefined;

  constructor(redis: Redis | Cluster, configured: number | undefined) {
    this.#redis = redis;
    if (configured !== undefined) this.#bytes = Promise.resolve(configured);
  }

  /** The limit for an argument of `length` UTF-16 units: no round trip when it surely fits. */
  async for(length: number): Promise<number> {
    if (this.#bytes === undefined && length * 3 <= minArgumentBytes) return minArgumentBytes;
    this.#bytes ??= this.#read();
    return this.#bytes;
  }

  /**
   * Throws {@link MessageTooLargeError} for the first of `records` (encoded: `encoded`) over what
   * Redis takes in one argument, before an add sends anything: Redis answers such an argument
   * with a bare protocol error (and drops the connection). No round trip unless a record is near
   * the smallest limit.
   */
  async checkRecords(
    queue: string,
    records: readonly JobRecord[],
    encoded: readonly string[],
  ): Promise<void> {
    let longest = 0;
    for (const text of encoded) if (text.length > longest) longest = text.length;
    if (longest * 3 <= minArgumentBytes) return;
    const maxBytes = await this.for(longest);
    for (const [index, text] of encoded.entries()) {
      if (text.length * 3 <= maxBytes) continue;
      const bytes = Buffer.byteLength(text);
      if (bytes > maxBytes)
        throw new MessageTooLargeError(
          queue,
          records[index]!.id,
          bytes,
          maxBytes,
          "Redis's proto-max-bulk-len",
        );
    }
  }

  /**
   * The entries of `settlements` (made by `build`) as the arguments of one exchange: one JSON
   * array (no round trip, no measuring when it surely fits), else each failure fitted under the
   * server's limit ({@link fitFailure}) and all packed by {@link packSettlements}.
   */
  async pack(settlements: readonly Settlement[], build: SettleEntryBuilder): Promise<SettleArguments> {
    const built = settlements.map((settlement) => build(settlement, settlement.record));
    const whole = built.length === 0 ? '[]' : JSON.stringify(built);
    const maxBytes = await this.for(whole.length);
    if (whole.length * 3 <= maxBytes || Buffer.byteLength(whole) <= maxBytes)
      return { last: whole, earlier: [] };
    const entries = built.map((entry, index) =>
      entry.k === 'f' ? fitFailure(settlements[index]!, entry, build, maxBytes) : entry,
    );
    const { batches, oversized } = packSettlements(entries, maxBytes);
    const last = batches.pop()!;
    return oversized.length > 0 ? { last, earlier: batches, oversized } : { last, earlier: batches };
  }

  async #read(): Promise<number> {
    try {
      const reply = (await this.#redis.config('GET', 'proto-max-bulk-len')) as unknown;
      // A flat [name, value] array (RESP2, and ioredis 6's default reply mapping), or an object
      // (ioredis 6 with `replyMapping: 'resp3'`: RESP3 maps as plain objects).
      const raw = Array.isArray(reply)
        ? reply[1]
        : typeof reply === 'object' && reply !== null
          ? (reply as Record<string, unknown>)['proto-max-bulk-len']
          : undefined;
      const value = Number(raw);
      return Number.isFinite(value) && value > 0 ? value : defaultArgumentBytes;
    } catch (error) {
      // Refused by the server (renamed or forbidden `CONFIG`): its default. Anything else (the
      // connection) is the exchange's failure, and the limit is read again next time.
      if (isReplyError(error)) return defaultArgumentBytes;
      this.#bytes = undefined;
      throw error;
    }
  }
}

/**
 * Whether `error` is the server's error reply (not a lost connection): ioredis 5's `ReplyError`,
 * or ioredis 6's subclasses of it named after the RESP3 type (`SimpleError`, `BlobError`). Told by
 * the class names along the prototype chain, so nothing imports ioredis at run time.
 */
export function isReplyError(error: unknown): boolean {
  if ((error as { name?: unknown } | null)?.name === 'ReplyError') return true;
  for (
    let proto: unknown = error;
    proto !== null && typeof proto === 'object';
    proto = Object.getPrototypeOf(proto)
  ) {
    if ((proto as { constructor?: { name?: unknown } }).constructor?.name === 'ReplyError') return true;
  }
  return false;
}

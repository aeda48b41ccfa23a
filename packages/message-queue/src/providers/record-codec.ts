import type { Backoff } from '../backoff.js';
import type { ChildFailurePolicy } from '../job-options.js';
import type { JobErrorEntry, JobRecord } from '../job-record.js';

/**
 * The stored form of a job for backends that keep it as a string (Redis, RabbitMQ): short keys
 * and defaults left out, so a small job costs ~60 bytes instead of ~230. The Lua scripts read
 * `p` (priority, default 0), `g` (group) and `P` (parent: `i` id, `f` policy).
 */
interface StoredRecord {
  i: string;
  n: string;
  d?: unknown;
  p?: number;
  a?: number;
  b?: Backoff;
  t?: number;
  r?: 1;
  g?: string;
  P?: { i: string; f: ChildFailurePolicy };
  k?: number;
  m?: number;
  e?: JobErrorEntry[];
  c: number;
  v?: number;
}

const defaultAttempts = 3;

function isDefaultBackoff(backoff: Backoff): boolean {
  return (
    backoff.type === 'exponential' &&
    backoff.delayMs === 1_000 &&
    backoff.maxDelayMs === 3_600_000 &&
    backoff.jitter === 0.5
  );
}

/** Encodes a record for storage. */
export function encodeRecord(record: JobRecord): string {
  const stored: StoredRecord = { i: record.id, n: record.name, c: record.createdAt };
  if (record.data !== undefined) stored.d = record.data;
  if (record.priority !== 0) stored.p = record.priority;
  if (record.attempts !== defaultAttempts) stored.a = record.attempts;
  if (!isDefaultBackoff(record.backoff)) stored.b = record.backoff;
  if (record.timeoutMs !== undefined) stored.t = record.timeoutMs;
  if (record.removeOnComplete) stored.r = 1;
  if (record.group !== undefined) stored.g = record.group;
  if (record.parent) stored.P = { i: record.parent.id, f: record.parent.onChildFailure };
  if (record.childCount !== undefined) stored.k = record.childCount;
  if (record.attemptsMade !== 0) stored.m = record.attemptsMade;
  if (record.errors.length > 0) stored.e = record.errors;
  if (record.availableAt !== record.createdAt) stored.v = record.availableAt;
  return JSON.stringify(stored);
}

/** Decodes a stored record (tolerates Lua's cjson turning `[]` into `{}`). */
export function decodeRecord(raw: string): JobRecord {
  const stored = JSON.parse(raw) as StoredRecord;
  const record: JobRecord = {
    id: stored.i,
    name: stored.n,
    data: stored.d,
    priority: stored.p ?? 0,
    attempts: stored.a ?? defaultAttempts,
    backoff: stored.b ?? { type: 'exponential', delayMs: 1_000, maxDelayMs: 3_600_000, jitter: 0.5 },
    removeOnComplete: stored.r === 1,
    attemptsMade: stored.m ?? 0,
    errors: Array.isArray(stored.e) ? stored.e : [],
    createdAt: stored.c,
    availableAt: stored.v ?? stored.c,
  };
  if (stored.t !== undefined) record.timeoutMs = stored.t;
  if (stored.g !== undefined) record.group = stored.g;
  if (stored.P) record.parent = { id: stored.P.i, onChildFailure: stored.P.f };
  if (stored.k !== undefined) record.childCount = stored.k;
  return record;
}

/**
 * Decodes a message body from a broker, or `undefined` when it is not a job record (not JSON,
 * or no id, name and creation time): a message another application put on the queue.
 */
export function decodeMessage(body: Buffer): JobRecord | undefined {
  let stored: Partial<StoredRecord> | null;
  try {
    stored = JSON.parse(body.toString()) as Partial<StoredRecord> | null;
  } catch {
    return undefined;
  }
  if (
    typeof stored !== 'object' ||
    stored === null ||
    typeof stored.i !== 'string' ||
    typeof stored.n !== 'string' ||
    typeof stored.c !== 'number'
  ) {
    return undefined;
  }
  return decodeRecord(body.toString());
}

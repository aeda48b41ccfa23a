import type { JobRecord } from '../job-record.js';
import type { Settlement } from '../provider.js';
import { decodeRecord } from './record-codec.js';

/**
 * Where a leased record keeps the stored form it was decoded from (an encoded record: a Redis
 * string, a RabbitMQ message body). The handler gets the record's payload as `job.data` and may
 * edit it in place; a failed try's settlement carries that same object, so a provider decodes the
 * payload again from this and stores it with the retry or the dead letter, not the handler's
 * edits. Enumerable, so that the worker's copy of the record for a failed try
 * (`{ ...record, attemptsMade, errors }`) carries it along; JSON, the backends' encoding, leaves
 * symbol keys out. A property (a few ns a job), not a `WeakMap` by payload (~1 µs a job, measured
 * on the Redis processing bench's record shape).
 */
const storedForm = Symbol('noa.mq.storedForm');

/** A record that may carry its stored form. */
type Delivered = JobRecord & { [storedForm]?: string | Buffer };

/** Notes the stored form a leased record was decoded from; returns the record. */
export function deliveredFrom(record: JobRecord, stored: string | Buffer): JobRecord {
  (record as Delivered)[storedForm] = stored;
  return record;
}

/**
 * `record` with its payload as it was delivered (decoded again from its stored form), whatever
 * the handler did to it; `record` itself when it carries no stored form, or its payload is no
 * object (nothing could edit it). Costs a decode of the record, on failed tries only.
 */
export function withDeliveredData(record: JobRecord): JobRecord {
  const stored = (record as Delivered)[storedForm];
  const { data } = record;
  if (stored === undefined || typeof data !== 'object' || data === null) return record;
  return { ...record, data: decodeRecord(typeof stored === 'string' ? stored : stored.toString()).data };
}

/** A settlement whose failed try's record has its payload as delivered (see {@link withDeliveredData}). */
export function settledWithDeliveredData(settlement: Settlement): Settlement {
  if (settlement.kind !== 'fail') return settlement;
  const record = withDeliveredData(settlement.record);
  return record === settlement.record ? settlement : { ...settlement, record };
}

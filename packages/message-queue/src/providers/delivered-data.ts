import type { JobRecord } from '../job-record.js';
import type { Settlement } from '../provider.js';
import { decodeRecord } from './record-codec.js';

/**
 * The stored form (an encoded record: a Redis string, a RabbitMQ message body) each leased job's
 * payload was decoded from, by the payload object. The handler gets that object as `job.data`
 * and may edit it in place; a failed try's settlement carries the same object (the worker
 * copies the record, not its data), so a provider finds the payload as it delivered it here and
 * stores that with the retry or the dead letter, not the handler's edits. Keyed by the payload:
 * nothing to forget (an entry goes with its payload), and a payload that is no object cannot be
 * edited.
 */
const storedForms = new WeakMap<object, string | Buffer>();

/** Notes the stored form a leased record was decoded from; returns the record. */
export function deliveredFrom(record: JobRecord, stored: string | Buffer): JobRecord {
  const { data } = record;
  if (typeof data === 'object' && data !== null) storedForms.set(data, stored);
  return record;
}

/**
 * `record` with its payload as it was delivered (decoded again from its stored form), whatever
 * the handler did to it; `record` itself when its payload was never an object of a leased
 * record (nothing could edit it). Costs a decode of the record, on failed tries only.
 */
export function withDeliveredData(record: JobRecord): JobRecord {
  const { data } = record;
  if (typeof data !== 'object' || data === null) return record;
  const stored = storedForms.get(data);
  if (stored === undefined) return record;
  return { ...record, data: decodeRecord(typeof stored === 'string' ? stored : stored.toString()).data };
}

/** A settlement whose failed try's record has its payload as delivered (see {@link withDeliveredData}). */
export function settledWithDeliveredData(settlement: Settlement): Settlement {
  if (settlement.kind !== 'fail') return settlement;
  const record = withDeliveredData(settlement.record);
  return record === settlement.record ? settlement : { ...settlement, record };
}

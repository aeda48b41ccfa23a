import { describe, expect, it } from 'vitest';
import type { JobRecord, Settlement } from '../src/index.js';
import {
  deliveredFrom,
  settledWithDeliveredData,
  withDeliveredData,
} from '../src/providers/delivered-data.js';
import { decodeRecord, encodeRecord } from '../src/providers/record-codec.js';

const recordOf = (data: unknown): JobRecord => ({
  id: 'a',
  name: 'n',
  data,
  priority: 0,
  attempts: 3,
  backoff: { type: 'fixed', delayMs: 10 },
  removeOnComplete: false,
  attemptsMade: 0,
  errors: [],
  createdAt: 1,
  availableAt: 1,
});

/** A record as a provider leases it: decoded from its stored form, which it keeps. */
const leased = (data: unknown, asBuffer = false): JobRecord => {
  const stored = encodeRecord(recordOf(data));
  return deliveredFrom(decodeRecord(stored), asBuffer ? Buffer.from(stored) : stored);
};

describe('the payload of a failed try as delivered', () => {
  it("is the stored one, not the handler's in-place edits, through the worker's copy of the record", () => {
    for (const asBuffer of [false, true]) {
      const record = leased({ items: [1, 2, 3], count: 0 }, asBuffer);
      const data = record.data as { items: number[]; count: number };
      data.items.pop();
      data.count += 1;
      // As the worker builds a failed try's record.
      const failed: JobRecord = { ...record, attemptsMade: 1 };
      const restored = withDeliveredData(failed);
      expect(restored.data).toEqual({ items: [1, 2, 3], count: 0 });
      expect(restored.attemptsMade).toBe(1);
      expect(restored.data).not.toBe(data);
      // JSON, the stored encoding, carries nothing of the stored form.
      expect(JSON.parse(encodeRecord(restored))).toEqual(JSON.parse(encodeRecord({ ...restored })));
    }
  });

  it('leaves alone a record with no stored form, or whose payload is no object', () => {
    const plain = recordOf({ n: 1 });
    expect(withDeliveredData(plain)).toBe(plain);
    const text = leased('text');
    expect(withDeliveredData(text)).toBe(text);
    const empty = leased(null);
    expect(withDeliveredData(empty)).toBe(empty);
  });

  it('restores failed settlements only, and returns the others as they are', () => {
    const record = leased({ n: 1 });
    (record.data as { n: number }).n = 2;
    const complete: Settlement = { kind: 'complete', record, result: 1 };
    expect(settledWithDeliveredData(complete)).toBe(complete);
    const fail: Settlement = { kind: 'fail', record, retryAt: 5 };
    const restored = settledWithDeliveredData(fail);
    expect(restored).toMatchObject({ kind: 'fail', retryAt: 5 });
    expect(restored.record.data).toEqual({ n: 1 });
  });
});

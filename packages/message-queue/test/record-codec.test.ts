import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { JobRecord } from '../src/index.js';
import { decodeRecord, encodeRecord } from '../src/providers/record-codec.js';

const backoff = fc.oneof(
  fc.constant({ type: 'exponential' as const, delayMs: 1_000, maxDelayMs: 3_600_000, jitter: 0.5 }),
  fc.record({ type: fc.constant('fixed' as const), delayMs: fc.nat() }),
  fc.record({ type: fc.constant('custom' as const), strategy: fc.string({ minLength: 1 }) }),
);

const record: fc.Arbitrary<JobRecord> = fc
  .record(
    {
      id: fc.string({ minLength: 1 }),
      name: fc.string(),
      data: fc.jsonValue(),
      priority: fc.integer({ min: 0, max: 10 }),
      attempts: fc.integer({ min: 1, max: 20 }),
      backoff,
      timeoutMs: fc.integer({ min: 1, max: 100_000 }),
      removeOnComplete: fc.boolean(),
      group: fc.string({ minLength: 1 }),
      parent: fc.record({
        id: fc.string({ minLength: 1 }),
        onChildFailure: fc.constantFrom('fail', 'ignore', 'continue'),
      }),
      childCount: fc.nat(),
      attemptsMade: fc.nat(20),
      errors: fc.array(
        fc.record({ attempt: fc.nat(), name: fc.string(), message: fc.string(), at: fc.nat() }),
        { maxLength: 3 },
      ),
      createdAt: fc.nat(),
      availableAt: fc.nat(),
    },
    {
      requiredKeys: [
        'id',
        'name',
        'priority',
        'attempts',
        'backoff',
        'removeOnComplete',
        'attemptsMade',
        'errors',
        'createdAt',
        'availableAt',
      ],
    },
  )
  .map((value) => JSON.parse(JSON.stringify(value)) as JobRecord);

describe('record codec', () => {
  it('round-trips every record', () => {
    fc.assert(
      fc.property(record, (value) => {
        expect(decodeRecord(encodeRecord(value))).toEqual(value);
      }),
    );
  });

  it('stores a default job in a few dozen bytes', () => {
    const encoded = encodeRecord({
      id: 'abcdefghij1',
      name: 'noop',
      data: { n: 1 },
      priority: 0,
      attempts: 3,
      backoff: { type: 'exponential', delayMs: 1_000, maxDelayMs: 3_600_000, jitter: 0.5 },
      removeOnComplete: false,
      attemptsMade: 0,
      errors: [],
      createdAt: 1_763_911_111_111,
      availableAt: 1_763_911_111_111,
    });
    expect(encoded.length).toBeLessThan(70);
  });
});

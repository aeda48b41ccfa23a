import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TickBatcher } from '../src/l2/tick-batcher.js';

describe('TickBatcher', () => {
  it('coalesces calls of one turn into one flush and answers each caller with its own result', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer(), { minLength: 1, maxLength: 600 }), async (items) => {
        const batches: number[][] = [];
        const batcher = new TickBatcher<number, number>(async (batch) => {
          batches.push(batch);
          return batch.map((item) => item * 2);
        }, 256);
        const results = await Promise.all(items.map((item) => batcher.add(item)));
        expect(results).toEqual(items.map((item) => item * 2));
        expect(batches.flat()).toEqual(items);
        expect(batches.length).toBe(Math.ceil(items.length / 256));
      }),
      { numRuns: 50 },
    );
  });

  it('rejects every caller of a failed batch', async () => {
    const batcher = new TickBatcher<number, number>(() => Promise.reject(new Error('down')));
    const results = await Promise.allSettled([batcher.add(1), batcher.add(2)]);
    expect(results.map((result) => result.status)).toEqual(['rejected', 'rejected']);
  });
});

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

  it('flushes a batch as soon as its weight reaches maxWeight', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 100 }), { minLength: 1, maxLength: 100 }),
        async (weights) => {
          const batches: number[][] = [];
          const batcher = new TickBatcher<number, number>(
            async (batch) => {
              batches.push(batch);
              return batch;
            },
            256,
            150,
          );
          const results = await Promise.all(weights.map((weight) => batcher.add(weight, weight)));
          expect(results).toEqual(weights);
          expect(batches.flat()).toEqual(weights);
          for (const batch of batches) {
            const total = batch.reduce((sum, weight) => sum + weight, 0);
            // Under the limit until the last item, which may cross it.
            expect(total - batch[batch.length - 1]!).toBeLessThan(150);
          }
        },
      ),
      { numRuns: 50 },
    );
  });

  it('gives joined items their batch results and their own place in them, mixed with added items', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.integer(), fc.boolean()), { minLength: 1, maxLength: 100 }),
        async (calls) => {
          const batches: number[][] = [];
          const batcher = new TickBatcher<number, number>(async (batch) => {
            batches.push(batch);
            return batch.map((item) => item * 2);
          }, 16);
          const results = await Promise.all(
            calls.map(async ([item, joined]) => {
              if (!joined) return batcher.add(item);
              const slot = batcher.join(item);
              return (await slot.results)[slot.index];
            }),
          );
          expect(results).toEqual(calls.map(([item]) => item * 2));
          expect(batches.flat()).toEqual(calls.map(([item]) => item));
        },
      ),
      { numRuns: 50 },
    );
  });

  it('rejects the results of a failed batch for joined items as for added ones', async () => {
    const batcher = new TickBatcher<number, number>(() => Promise.reject(new Error('down')));
    const added = batcher.add(1);
    const slot = batcher.join(2);
    const results = await Promise.allSettled([added, slot.results]);
    expect(results.map((result) => result.status)).toEqual(['rejected', 'rejected']);
  });
});

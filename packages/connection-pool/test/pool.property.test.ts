import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Pool } from '../src/index.js';

const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

type Op =
  | { kind: 'acquire' }
  | { kind: 'release'; pick: number }
  | { kind: 'destroy'; pick: number }
  | { kind: 'abort'; pick: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.constant({ kind: 'acquire' } as const),
  fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant('destroy' as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant('abort' as const), pick: fc.nat() }),
);

describe('Pool invariants under random interleavings', () => {
  it('keeps active + idle <= max, never lends one resource twice, serves every live waiter once', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 3 }),
        fc.integer({ min: 1, max: 6 }),
        fc.array(opArb, { maxLength: 60 }),
        fc.boolean(),
        async (min, extra, ops, asyncCreate) => {
          const max = Math.max(min, extra);
          let nextId = 0;
          const pool = new Pool<{ id: number }>(
            {
              create: async () => {
                if (asyncCreate) await flush();
                nextId += 1;
                return { id: nextId };
              },
              destroy: async () => {},
            },
            { min, max, acquireTimeoutMs: 60_000 },
          );
          const held: { id: number }[] = [];
          const servedCount = new Map<number, number>();
          const pending = new Map<number, AbortController>();
          const aborted = new Set<number>();
          let waiterIndex = 0;
          const check = () => {
            const stats = pool.stats;
            expect(stats.active + stats.idle).toBeLessThanOrEqual(max);
            expect(stats.size).toBeLessThanOrEqual(max);
            expect(new Set(held.map((resource) => resource.id)).size).toBe(held.length);
            expect(stats.active).toBe(held.length);
          };
          const startAcquire = () => {
            const index = waiterIndex;
            waiterIndex += 1;
            const controller = new AbortController();
            pending.set(index, controller);
            void pool.acquire({ signal: controller.signal }).then(
              (resource) => {
                pending.delete(index);
                // An aborted caller must never be handed a resource.
                expect(aborted.has(index)).toBe(false);
                servedCount.set(index, (servedCount.get(index) ?? 0) + 1);
                held.push(resource);
              },
              () => {
                pending.delete(index);
                expect(aborted.has(index)).toBe(true);
              },
            );
          };
          for (const op of ops) {
            if (op.kind === 'acquire') startAcquire();
            else if (op.kind === 'abort') {
              const waiting = [...pending.keys()];
              if (waiting.length > 0) {
                const index = waiting[op.pick % waiting.length]!;
                aborted.add(index);
                pending.get(index)!.abort();
              }
            } else if (held.length > 0) {
              const [resource] = held.splice(op.pick % held.length, 1);
              if (op.kind === 'release') pool.release(resource!);
              else pool.destroy(resource!);
            }
            await flush();
            check();
          }
          // Liveness: give everything back until every waiter was served.
          const live = () => waiterIndex - aborted.size;
          for (let round = 0; round < waiterIndex + 5 && servedCount.size < live(); round += 1) {
            for (const resource of held.splice(0)) pool.release(resource);
            await flush();
            await flush();
            check();
          }
          expect(servedCount.size).toBe(live());
          for (const count of servedCount.values()) expect(count).toBe(1);
          for (const resource of held.splice(0)) pool.release(resource);
          await pool.close();
        },
      ),
      { numRuns: 150 },
    );
  });
});

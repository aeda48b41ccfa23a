import { ManualClock } from '@noa/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { autoBlockSchema, violationSlots } from '../src/auto-block.js';
import { createRateLimiter } from '../src/index.js';

// Auto-block's sliding count against a reference model (the refusals since the last block, unblock
// or reset, at their times) through the limiter's adjustments: an unblock and a reset clear the
// recent violations, a manual block records none while it lasts and keeps those before it.
describe('auto-block with manual blocks, unblocks and resets', () => {
  const operationArb = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        kind: fc.constant('refuse' as const),
        gap: fc.oneof(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 6_000 })),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('unblock' as const),
        gap: fc.integer({ min: 0, max: 3_000 }),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({ kind: fc.constant('reset' as const), gap: fc.integer({ min: 0, max: 3_000 }) }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('block' as const),
        gap: fc.integer({ min: 0, max: 3_000 }),
        durationMs: fc.integer({ min: 1, max: 8_000 }),
      }),
    },
  );

  it('blocks at the N-th refusal since the last unblock or reset within any withinMs, and only then', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 5_000 }),
        fc.array(operationArb, { minLength: 1, maxLength: 80 }),
        async (violations, withinMs, operations) => {
          const clock = new ManualClock(1_700_000_000_000);
          const blocking = autoBlockSchema.parse({ violations, withinMs, blockMs: 1_000 });
          const limiter = createRateLimiter({
            limits: [{ limit: 1, windowMs: 86_400_000 }],
            autoBlock: blocking,
            clock,
          });
          const horizon = (violationSlots + 1) * Math.ceil(withinMs / violationSlots);
          // The key's one point is spent: every check that is not blocked is a refusal.
          expect((await limiter.check('k')).allowed).toBe(true);
          let since: number[] = [];
          for (const operation of operations) {
            clock.advance(operation.gap);
            const now = clock.now();
            if (operation.kind === 'unblock') {
              await limiter.unblock('k');
              since = [];
            } else if (operation.kind === 'reset') {
              await limiter.reset('k');
              expect((await limiter.check('k')).allowed).toBe(true);
              since = [];
            } else if (operation.kind === 'block') {
              expect((await limiter.block('k', operation.durationMs)).outcome).toBe('blocked');
            } else {
              // A peek counts nothing: it tells whether a block is in force before the check.
              const inForce = (await limiter.peek('k')).outcome === 'blocked';
              const result = await limiter.check('k');
              expect(result.allowed).toBe(false);
              // A blocked key records no violation.
              if (inForce) {
                expect(result.outcome).toBe('blocked');
                continue;
              }
              since.push(now);
              const inWindow = since.filter((time) => time > now - withinMs).length;
              if (inWindow >= violations) expect(result.outcome, `${since}`).toBe('blocked');
              if (result.outcome === 'blocked') {
                expect(since.filter((time) => time > now - horizon).length).toBeGreaterThanOrEqual(
                  violations,
                );
                since = [];
              }
            }
          }
          await limiter.close();
        },
      ),
      { numRuns: 300 },
    );
  });
});

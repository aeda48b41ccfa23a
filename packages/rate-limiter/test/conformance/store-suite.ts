import { randomUUID } from 'node:crypto';
import { awayFromWindowEdge } from '@noa/testkit';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { autoBlockSchema } from '../../src/auto-block.js';
import { type AlgorithmName, algorithmNames, type LimitPolicy } from '../../src/policy.js';
import type { ConsumeOutcome, RateLimitStore, StoreAdjustment } from '../../src/stores/store.js';
import { keyWindowOffset } from '../../src/window-offset.js';

/** How a backend is brought up for the suite; `skip` names why it cannot run here. */
export interface StoreFactory {
  skip?: string | undefined;
  create(): Promise<RateLimitStore>;
  destroy?(store: RateLimitStore): Promise<void>;
}

const policy = (
  algorithm: AlgorithmName,
  limit: number,
  windowMs: number,
  extra: Partial<LimitPolicy> = {},
) => ({ name: algorithm, algorithm, limit, windowMs, ...extra }) as LimitPolicy;

const allowedOf = (outcomes: ConsumeOutcome[]) =>
  outcomes.map(
    (outcome) => outcome.blockedMs === 0 && outcome.decisions.every((decision) => decision.allowed),
  );

/**
 * The conformance suite every store passes unchanged (memory, Redis, Redis Cluster): the
 * store interface's contract, independent of how state is kept.
 */
export function storeConformanceSuite(name: string, factory: StoreFactory): void {
  describe.skipIf(factory.skip !== undefined)(`store conformance: ${name}`, () => {
    let store: RateLimitStore;
    const key = () => `conf:${randomUUID()}`;
    const one = async (k: string, limits: LimitPolicy[], cost = 1) =>
      (await store.consume(k, limits, [cost], undefined))[0]!;

    beforeAll(async () => {
      store = await factory.create();
    });
    afterAll(async () => {
      await factory.destroy?.(store);
    });
    // Every store here runs on the real clock (Redis TIME on this host, or Date.now), and the fixed
    // windows below (a minute, a day) are aligned to it: a test's refusals and remaining counts are
    // of the window its first call opened, so none starts within 3 s of a minute's end.
    beforeEach(async () => {
      await awayFromWindowEdge(60_000, 3_000);
    });

    for (const algorithm of algorithmNames) {
      it(`${algorithm}: admits exactly the limit in a burst, then refuses with a bounded retry time`, async () => {
        const k = key();
        const limits = [policy(algorithm, 5, 60_000)];
        const results: ConsumeOutcome[] = [];
        for (let index = 0; index < 7; index += 1) results.push(await one(k, limits));
        expect(allowedOf(results)).toEqual([true, true, true, true, true, false, false]);
        expect(results.map((result) => result.decisions[0]!.remaining)).toEqual([4, 3, 2, 1, 0, 0, 0]);
        const refused = results[5]!.decisions[0]!;
        expect(refused.retryAfterMs).toBeGreaterThan(0);
        expect(refused.retryAfterMs).toBeLessThanOrEqual(algorithm === 'sliding-window' ? 120_000 : 60_000);
        expect(refused.limit).toBe(5);
      });

      it(`${algorithm}: nextMs (RateLimit t) is when the next point comes back, resetMs when all of them do`, async () => {
        const k = key();
        const limits = [policy(algorithm, 5, 60_000)];
        const fresh = (await one(k, limits, 0)).decisions[0]!;
        // Nothing used: the whole quota is there, nothing more can come back.
        expect({ remaining: fresh.remaining, nextMs: fresh.nextMs, resetMs: fresh.resetMs }).toEqual({
          remaining: 5,
          nextMs: 0,
          resetMs: 0,
        });
        let last = fresh;
        for (let index = 0; index < 5; index += 1) last = (await one(k, limits)).decisions[0]!;
        const refused = (await one(k, limits)).decisions[0]!;
        for (const decision of [last, refused]) {
          expect(decision.remaining).toBe(0);
          expect(decision.nextMs).toBeGreaterThan(0);
          expect(decision.nextMs).toBeLessThanOrEqual(decision.resetMs);
          if (algorithm === 'fixed-window') expect(decision.nextMs).toBe(decision.resetMs);
          // Five at once: the window slides a point free 12 s into the next window, 48 s before all.
          if (algorithm === 'sliding-window' && decision.resetMs > 60_000)
            expect(decision.nextMs).toBe(decision.resetMs - 48_000);
          if (algorithm === 'sliding-log') expect(decision.nextMs).toBeGreaterThan(50_000);
          if (algorithm === 'token-bucket' || algorithm === 'leaky-bucket') {
            // One point per 12 s; the whole bucket in 60 s (less what the burst took to send).
            expect(decision.nextMs).toBeGreaterThan(10_000);
            expect(decision.nextMs).toBeLessThanOrEqual(12_000);
            expect(decision.resetMs).toBeGreaterThan(58_000);
          }
        }
        // A refusal answers for a cost of 1 as t does: retry when the next point is back.
        expect(refused.retryAfterMs).toBe(refused.nextMs);
      });

      it(`${algorithm}: a decision states the capacity as limit and, for a bucket, its refill as rate`, async () => {
        // The headers' RateLimit-Policy states a bucket's sustained quota from rate, not its burst.
        const bucket = algorithm === 'token-bucket' || algorithm === 'leaky-bucket';
        const decision = (await one(key(), [policy(algorithm, 5, 60_000, bucket ? { burst: 50 } : {})]))
          .decisions[0]!;
        expect({ limit: decision.limit, rate: decision.rate }).toEqual(
          bucket ? { limit: 50, rate: 5 } : { limit: 5, rate: undefined },
        );
      });

      it(`${algorithm}: a batch of costs is applied in order, all-or-nothing per request`, async () => {
        const k = key();
        const outcomes = await store.consume(k, [policy(algorithm, 4, 60_000)], [2, 3, 1, 1, 0], undefined);
        expect(allowedOf(outcomes)).toEqual([true, false, true, true, true]);
        expect(outcomes.map((outcome) => outcome.decisions[0]!.remaining)).toEqual([2, 2, 1, 0, 0]);
      });
    }

    for (const algorithm of algorithmNames) {
      it(`${algorithm}: a cost above the capacity is refused with retryAfterMs Infinity and counts nothing`, async () => {
        const k = key();
        const limits = [policy(algorithm, 5, 60_000)];
        // An unused key (where the buckets and the log answered "retry in 0 ms"), then a used one.
        const [fresh] = await store.consume(k, limits, [6], undefined);
        expect(fresh!.decisions[0]).toMatchObject({
          allowed: false,
          remaining: 5,
          retryAfterMs: Number.POSITIVE_INFINITY,
          delayMs: 0,
        });
        const outcomes = await store.consume(k, limits, [2, 40, 3, 1], undefined);
        expect(allowedOf(outcomes)).toEqual([true, false, true, false]);
        expect(outcomes[1]!.decisions[0]).toMatchObject({
          remaining: 3,
          retryAfterMs: Number.POSITIVE_INFINITY,
        });
        // A plain refusal still carries a finite retry time.
        expect(Number.isFinite(outcomes[3]!.decisions[0]!.retryAfterMs)).toBe(true);
      });

      it(`${algorithm}: a cost above the capacity is never, even with auto-block starting a block`, async () => {
        const k = key();
        const limits = [policy(algorithm, 2, 60_000)];
        const block = autoBlockSchema.parse({ violations: 1, withinMs: 60_000, blockMs: 5_000 });
        const [outcome] = await store.consume(k, limits, [3], block);
        expect(outcome!.decisions[0]!.retryAfterMs).toBe(Number.POSITIVE_INFINITY);
      });
    }

    it('a cost above one limit of several: that limit says never, the others keep their state', async () => {
      const k = key();
      const limits = [policy('token-bucket', 4, 60_000, { burst: 2 }), policy('fixed-window', 100, 60_000)];
      const [outcome] = await store.consume(k, limits, [3], undefined);
      expect(
        outcome!.decisions.map(({ allowed, remaining, retryAfterMs }) => ({
          allowed,
          remaining,
          retryAfterMs,
        })),
      ).toEqual([
        { allowed: false, remaining: 2, retryAfterMs: Number.POSITIVE_INFINITY },
        { allowed: true, remaining: 100, retryAfterMs: 0 },
      ]);
    });

    for (const algorithm of algorithmNames) {
      const adjust = (k: string, limits: LimitPolicy[], adjustment: StoreAdjustment) =>
        Promise.resolve(store.adjust!(k, limits, adjustment, undefined));
      const remainingOf = (outcome: ConsumeOutcome) => outcome.decisions[0]!.remaining;

      it(`${algorithm}: peek reports what a cost-0 check would and counts nothing`, async () => {
        const k = key();
        const limits = [policy(algorithm, 5, 60_000)];
        const fresh = await adjust(k, limits, { operation: 'peek' });
        expect(allowedOf([fresh])).toEqual([true]);
        expect(remainingOf(fresh)).toBe(5);
        await store.consume(k, limits, [1, 1, 1], undefined);
        for (let index = 0; index < 3; index += 1)
          expect(remainingOf(await adjust(k, limits, { operation: 'peek' }))).toBe(2);
        expect(allowedOf(await store.consume(k, limits, [1, 1, 1], undefined))).toEqual([true, true, false]);
      });

      it(`${algorithm}: refund gives points back within the limit, never past empty`, async () => {
        const k = key();
        const limits = [policy(algorithm, 5, 60_000)];
        expect(remainingOf(await adjust(k, limits, { operation: 'refund', points: 3 }))).toBe(5);
        await store.consume(k, limits, [2, 3], undefined);
        const refunded = await adjust(k, limits, { operation: 'refund', points: 2 });
        expect(remainingOf(refunded)).toBe(2);
        expect(allowedOf(await store.consume(k, limits, [2, 1], undefined))).toEqual([true, false]);
        // More than was consumed: back to a full quota, no further.
        expect(remainingOf(await adjust(k, limits, { operation: 'refund', points: 50 }))).toBe(5);
        expect(allowedOf(await store.consume(k, limits, [5, 1], undefined))).toEqual([true, false]);
      });

      it(`${algorithm}: penalize consumes even over the limit, down to remaining 0`, async () => {
        const k = key();
        const limits = [policy(algorithm, 5, 60_000)];
        expect(remainingOf(await adjust(k, limits, { operation: 'penalize', points: 3 }))).toBe(2);
        const floored = await adjust(k, limits, { operation: 'penalize', points: 10 });
        expect(remainingOf(floored)).toBe(0);
        expect(allowedOf(await store.consume(k, limits, [1], undefined))).toEqual([false]);
        // At the floor a refund gives back exactly what it says.
        expect(remainingOf(await adjust(k, limits, { operation: 'refund', points: 1 }))).toBe(1);
      });
    }

    it('refund and penalize apply to every limit of the key', async () => {
      const k = key();
      const limits = [policy('token-bucket', 3, 60_000), policy('sliding-log', 4, 60_000)];
      await store.consume(k, limits, [1, 1, 1], undefined);
      const refunded = await Promise.resolve(
        store.adjust!(k, limits, { operation: 'refund', points: 2 }, undefined),
      );
      expect(refunded.decisions.map((decision) => decision.remaining)).toEqual([2, 3]);
      const penalized = await Promise.resolve(
        store.adjust!(k, limits, { operation: 'penalize', points: 2 }, undefined),
      );
      expect(penalized.decisions.map((decision) => decision.remaining)).toEqual([0, 1]);
    });

    it('block refuses the key as an auto-block does, until unblock', async () => {
      const k = key();
      const limits = [policy('fixed-window', 5, 60_000)];
      const block = autoBlockSchema.parse({ violations: 3, withinMs: 60_000, blockMs: 1_000 });
      const blocked = await Promise.resolve(
        store.adjust!(k, limits, { operation: 'block', durationMs: 45_000 }, block),
      );
      expect(blocked.blockedMs).toBeGreaterThan(44_000);
      expect(blocked.decisions[0]!.retryAfterMs).toBe(blocked.blockedMs);
      const [check] = await store.consume(k, limits, [1], block);
      expect(check!.blockedMs).toBeGreaterThan(44_000);
      expect(check!.blockedMs).toBeLessThanOrEqual(45_000);
      expect(check!.decisions[0]!.retryAfterMs).toBe(check!.blockedMs);
      // The blocked request was not counted.
      expect(check!.decisions[0]!.remaining).toBe(5);
      const lifted = await Promise.resolve(store.adjust!(k, limits, { operation: 'unblock' }, block));
      expect(lifted.blockedMs).toBe(0);
      expect(allowedOf(await store.consume(k, limits, [1], block))).toEqual([true]);
    });

    for (const algorithm of algorithmNames)
      it(`${algorithm}: refused requests take nothing, so a limit raised in the window admits the difference`, async () => {
        // envoyproxy/ratelimit#185: its counter grew with every refused call, so a customer
        // whose quota was raised mid-window stayed refused. Here a key refused five times and a
        // key never refused stand alike under the raised limit.
        const [refused, spared] = [key(), key()];
        const low = [policy(algorithm, 2, 60_000)];
        for (let index = 0; index < 7; index += 1) await one(refused, low);
        for (let index = 0; index < 2; index += 1) await one(spared, low);
        const high = [policy(algorithm, 4, 60_000)];
        const after = async (k: string) => {
          const results: ConsumeOutcome[] = [];
          for (let index = 0; index < 3; index += 1) results.push(await one(k, high));
          return results.map((result) => [allowedOf([result])[0], result.decisions[0]!.remaining]);
        };
        const expected = await after(spared);
        expect(await after(refused)).toEqual(expected);
        if (algorithm !== 'token-bucket')
          expect(expected.map(([allowed]) => allowed)).toEqual([true, true, false]);
      });

    it('checks several limits atomically: a refused request is counted in none', async () => {
      const k = key();
      const limits = [policy('token-bucket', 2, 60_000), policy('fixed-window', 3, 86_400_000)];
      expect(allowedOf([await one(k, limits), await one(k, limits)])).toEqual([true, true]);
      const refused = await one(k, limits);
      expect(refused.decisions.map((decision) => [decision.allowed, decision.remaining])).toEqual([
        [false, 0],
        [true, 1],
      ]);
    });

    it('sliding log counts costs exactly', async () => {
      const k = key();
      const limits = [policy('sliding-log', 5, 60_000)];
      expect(allowedOf(await store.consume(k, limits, [3, 3, 2, 1], undefined))).toEqual([
        true,
        false,
        true,
        false,
      ]);
    });

    it('leaky bucket in queue mode admits with growing delays, then refuses past the queue', async () => {
      const k = key();
      const limits = [policy('leaky-bucket', 10, 1_000, { burst: 1, queueMaxDelayMs: 250 })];
      const outcomes = await store.consume(k, limits, [1, 1, 1, 1, 1], undefined);
      expect(allowedOf(outcomes)).toEqual([true, true, true, false, false]);
      const delays = outcomes.slice(0, 3).map((outcome) => outcome.decisions[0]!.delayMs);
      expect(delays[0]).toBe(0);
      expect(delays[1]).toBeGreaterThan(90);
      expect(delays[1]).toBeLessThanOrEqual(100);
      expect(delays[2]).toBeGreaterThan(190);
      expect(delays[2]).toBeLessThanOrEqual(200);
    });

    it('auto-blocks after repeated violations and reports the block', async () => {
      const k = key();
      const limits = [policy('fixed-window', 1, 60_000)];
      const block = autoBlockSchema.parse({ violations: 2, withinMs: 60_000, blockMs: 30_000 });
      const outcomes = await store.consume(k, limits, [1, 1, 1], block);
      expect(allowedOf(outcomes)).toEqual([true, false, false]);
      // The refusal that starts the block says so: no retry before the block ends.
      expect(outcomes[2]!.decisions[0]!.retryAfterMs).toBeGreaterThanOrEqual(30_000);
      const [blocked] = await store.consume(k, limits, [0], block);
      expect(blocked!.blockedMs).toBeGreaterThan(29_000);
      expect(blocked!.blockedMs).toBeLessThanOrEqual(30_000);
    });

    it("unblock lifts an auto-block but keeps the offender's history: the next block is longer (reset forgets it)", async () => {
      const k = key();
      const limits = [policy('fixed-window', 1, 60_000)];
      const block = autoBlockSchema.parse({ violations: 2, withinMs: 60_000, blockMs: 30_000 });
      const unblock = () => Promise.resolve(store.adjust!(k, limits, { operation: 'unblock' }, block));
      await store.consume(k, limits, [1, 1, 1], block);
      expect((await unblock()).blockedMs).toBe(0);
      // Offending again right after the unblock: the second offence doubles the block.
      const again = (await store.consume(k, limits, [1, 1, 0], block))[2];
      expect(again!.blockedMs).toBeGreaterThan(59_000);
      expect(again!.blockedMs).toBeLessThanOrEqual(60_000);
      // reset forgets the history with the counters: the next block is the first one's length.
      await store.reset(k);
      await store.consume(k, limits, [1, 1, 1], block);
      const [fresh] = await store.consume(k, limits, [0], block);
      expect(fresh!.blockedMs).toBeGreaterThan(29_000);
      expect(fresh!.blockedMs).toBeLessThanOrEqual(30_000);
    });

    it('consumeMany handles many keys (mixed limits) in one call, like one consume per key', async () => {
      const mixed = [policy('sliding-log', 2, 60_000), policy('token-bucket', 3, 60_000)];
      const single = [policy('fixed-window', 1, 60_000)];
      const keys = Array.from({ length: 300 }, () => key());
      const requests = keys.map((k, index) => ({
        key: k,
        limits: index % 2 === 0 ? mixed : single,
        costs: [1, 1, 1],
      }));
      const results = await store.consumeMany!(requests, undefined);
      expect(results).toHaveLength(300);
      results.forEach((outcomes, index) => {
        expect(allowedOf(outcomes)).toEqual(index % 2 === 0 ? [true, true, false] : [true, false, false]);
      });
      // The state was written per key: one more request of each is refused.
      expect(allowedOf([await one(keys[0]!, mixed), await one(keys[1]!, single)])).toEqual([false, false]);
    });

    it('reset forgets counters and blocks', async () => {
      const k = key();
      const limits = [policy('fixed-window', 1, 60_000), policy('sliding-log', 1, 60_000)];
      await one(k, limits);
      expect(allowedOf([await one(k, limits)])).toEqual([false]);
      await store.reset(k);
      expect(allowedOf([await one(k, limits)])).toEqual([true]);
    });

    it('reset resolves whether the key had state (counters or a block), as rate-limiter-flexible delete()', async () => {
      const k = key();
      const limits = [policy('fixed-window', 1, 60_000), policy('sliding-log', 1, 60_000)];
      expect(await store.reset(k)).toBe(false);
      await one(k, limits);
      expect(await store.reset(k)).toBe(true);
      expect(await store.reset(k)).toBe(false);
      // A key with only a block (set by adjust, never counted) had state too.
      const blocked = key();
      await store.adjust!(blocked, limits, { operation: 'block', durationMs: 30_000 }, undefined);
      expect(await store.reset(blocked)).toBe(true);
    });

    it('resetAll(namespaces) forgets every key starting with one of them, and no other', async () => {
      // Optional in the interface; every store of this suite (memory, Redis, Cluster) has it.
      expect(store.resetAll).toBeTypeOf('function');
      const run = randomUUID();
      const limits = [policy('fixed-window', 1, 60_000), policy('sliding-log', 1, 60_000)];
      const block = autoBlockSchema.parse({ violations: 1, withinMs: 60_000, blockMs: 600_000 });
      const gone = [`${run}:a:one`, `${run}:a:two`, `${run}:b:x`, `${run}:a*:y`];
      const kept = [`${run}:c:one`, `${run}:ab:one`, `other:${run}:a:one`];
      for (const k of [...gone, ...kept]) {
        await store.consume(k, limits, [1], block);
        // Refused, then blocked: counters, logs and a block to forget.
        expect(allowedOf(await store.consume(k, limits, [1, 1], block))).toEqual([false, false]);
      }
      await store.resetAll!([`${run}:a:`, `${run}:b:`, `${run}:a*:`]);
      for (const k of gone)
        expect(allowedOf([(await store.consume(k, limits, [1], block))[0]!])).toEqual([true]);
      for (const k of kept)
        expect(allowedOf([(await store.consume(k, limits, [1], block))[0]!])).toEqual([false]);
    });

    it('recordNamespace: each rule lists its own namespaces, a record is never shortened, and expires', async () => {
      // Optional in the interface; every store of this suite (memory, Redis, Cluster) has it.
      expect(store.recordNamespace).toBeTypeOf('function');
      const run = randomUUID();
      const rule = `${run}:default`;
      // A limiter whose prefix is ours plus ':default': another rule, whose namespaces start like ours.
      const longer = `${run}:default:default`;
      const [kept, brief, later] = ['aaaaaaaa', 'bbbbbbbb', 'cccccccc'].map(
        (fingerprint) => `${rule}:${fingerprint}:`,
      );
      await store.recordNamespace!(rule, kept!, 60_000);
      await store.recordNamespace!(rule, brief!, 300);
      // A shorter record of a namespace kept longer does not shorten it.
      await store.recordNamespace!(rule, kept!, 300);
      await store.recordNamespace!(longer, `${longer}:dddddddd:`, 60_000);
      expect((await store.recordedNamespaces!(rule)).sort()).toEqual([kept, brief]);
      expect(await store.recordedNamespaces!(longer)).toEqual([`${longer}:dddddddd:`]);
      expect(await store.recordedNamespaces!(run)).toEqual([]);
      await new Promise((resolve) => setTimeout(resolve, 600));
      // Another record drops the expired ones (a store may list them until then).
      await store.recordNamespace!(rule, later!, 60_000);
      expect((await store.recordedNamespaces!(rule)).sort()).toEqual([kept, later]);
    });

    /** How far `instant` is from the nearest k × windowMs + offset (a grid's window start). */
    const offGrid = (instant: number, windowMs: number, offset: number) => {
      const phase = (((instant - offset) % windowMs) + windowMs) % windowMs;
      return Math.min(phase, windowMs - phase);
    };

    for (const algorithm of ['fixed-window', 'sliding-window'] as const) {
      it(`${algorithm}: windowOffsetMs moves the windows to k × windowMs + offset (resets, peek, refund)`, async () => {
        const k = key();
        // The offset window ends about 20 s from now (the epoch's minute anywhere 3-57 s away).
        const offset = (Date.now() + 20_000) % 60_000;
        const limits = [policy(algorithm, 3, 60_000, { windowOffsetMs: offset })];
        const results: ConsumeOutcome[] = [];
        for (let index = 0; index < 4; index += 1) results.push(await one(k, limits));
        const at = Date.now();
        expect(allowedOf(results)).toEqual([true, true, true, false]);
        const refused = results[3]!.decisions[0]!;
        // The fixed window's quota is back at the window's end; the sliding window's a window later.
        const windows = algorithm === 'fixed-window' ? 0 : 60_000;
        expect(refused.resetMs - windows).toBeGreaterThan(15_000);
        expect(refused.resetMs - windows).toBeLessThanOrEqual(21_000);
        expect(offGrid(at + refused.resetMs, 60_000, offset)).toBeLessThan(2_000);
        if (store.adjust !== undefined) {
          const peeked = (await store.adjust(k, limits, { operation: 'peek' }, undefined)).decisions[0]!;
          expect(peeked.remaining).toBe(0);
          expect(offGrid(Date.now() + peeked.resetMs, 60_000, offset)).toBeLessThan(2_000);
          const refunded = await store.adjust(k, limits, { operation: 'refund', points: 1 }, undefined);
          expect(refunded.decisions[0]!.remaining).toBe(1);
          expect(allowedOf([await one(k, limits), await one(k, limits)])).toEqual([true, false]);
        }
      });

      it(`${algorithm}: windowOffsetMs 'key' ends each key's windows at its own offset, a hash of the key`, async () => {
        // A key whose window edge is at least 5 s from now, so that its counts stay in one window.
        let k = key();
        while (offGrid(Date.now(), 60_000, keyWindowOffset(k, 60_000)) < 5_000) k = key();
        const offset = keyWindowOffset(k, 60_000);
        const limits = [policy(algorithm, 2, 60_000, { windowOffsetMs: 'key' })];
        const results = await store.consume(k, limits, [1, 1, 1], undefined);
        expect(allowedOf(results)).toEqual([true, true, false]);
        const refused = results[2]!.decisions[0]!;
        expect(offGrid(Date.now() + refused.resetMs, 60_000, offset)).toBeLessThan(2_000);
        // Batched with other keys, each key counts in its own windows.
        if (store.consumeMany !== undefined) {
          const others = [key(), key()];
          const batch = await store.consumeMany(
            [k, ...others].map((each) => ({ key: each, limits, costs: [1] })),
            undefined,
          );
          expect(batch.map((outcomes) => allowedOf(outcomes)[0])).toEqual([false, true, true]);
          for (const [index, each] of others.entries()) {
            const decision = batch[index + 1]![0]!.decisions[0]!;
            expect(
              offGrid(Date.now() + decision.resetMs, 60_000, keyWindowOffset(each, 60_000)),
            ).toBeLessThan(2_000);
          }
        }
      });
    }

    it('windowOffsetMs: a window of the offset grid passes in real time', async () => {
      const k = key();
      // The window of 1 s ends 400 ms from now.
      const offset = (Date.now() + 400) % 1_000;
      const limits = [policy('fixed-window', 1, 1_000, { windowOffsetMs: offset })];
      expect(allowedOf(await store.consume(k, limits, [1, 1], undefined))).toEqual([true, false]);
      await new Promise((resolve) => setTimeout(resolve, 550));
      expect(allowedOf([await one(k, limits)])).toEqual([true]);
    });

    it('a window passes in real time', async () => {
      const k = key();
      const limits = [policy('sliding-log', 2, 300)];
      expect(allowedOf(await store.consume(k, limits, [1, 1, 1], undefined))).toEqual([true, true, false]);
      await new Promise((resolve) => setTimeout(resolve, 350));
      expect(allowedOf([await one(k, limits)])).toEqual([true]);
    });
  });
}

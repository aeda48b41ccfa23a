import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRateLimiter, MemoryStore } from '../../src/index.js';
import type { LimitPolicy } from '../../src/policy.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';
import type { ConsumeOutcome, RateLimitStore } from '../../src/stores/store.js';
import { keyWindowOffset } from '../../src/window-offset.js';
import { expressApp, fastifyApp } from '../http-apps.js';

// windowOffsetMs on Redis, both ways it runs its Lua (functions, FCALL; scripts, EVALSHA), against
// the memory store: the same decisions for the one-key form, the batch form (several limits, an
// auto-block), refund, penalize and peek; and the reset headers over HTTP. The memory twin of the
// headers test, with an injected clock, is test/middleware-window-offset.test.ts; the conformance
// suite (test/conformance/store-suite.ts) runs the offset cases on a Redis Cluster too.

const redisUp = await isReachable('redis');
const skip = redisUp ? undefined : `skipped: no Redis at ${serviceUrl('redis')}`;
if (skip) console.log(skip);

const windowMs = 60_000;
/** How far `instant` is from the nearest k × windowMs + offset. */
const offGrid = (instant: number, offset: number) => {
  const phase = (((instant - offset) % windowMs) + windowMs) % windowMs;
  return Math.min(phase, windowMs - phase);
};

/** A key whose 'key' offset puts its window edge at least 5 s from now (its counts stay in one window). */
function keyAwayFromEdge(): string {
  for (;;) {
    const key = `wo:${uniqueName('k')}`;
    if (offGrid(Date.now(), keyWindowOffset(key, windowMs)) >= 5_000) return key;
  }
}

/**
 * A history on `store`: checks and adjustments of one key under `limits`, as allowed, remaining
 * and whether each reset lands on the limit's grid (the offset given, or the key's).
 */
async function history(store: RateLimitStore, key: string, limits: LimitPolicy[], offsets: number[]) {
  const trace: string[] = [];
  const note = (outcome: ConsumeOutcome) => {
    const at = Date.now();
    trace.push(
      outcome.decisions
        .map((decision, index) => {
          const onGrid = decision.resetMs === 0 || offGrid(at + decision.resetMs, offsets[index]!) < 2_000;
          return `${decision.allowed ? 'y' : 'n'}${decision.remaining}${onGrid ? '' : ' OFF GRID'}`;
        })
        .join(','),
    );
  };
  for (const outcome of await store.consume(key, limits, [1, 2, 1], undefined)) note(outcome);
  note(await store.adjust!(key, limits, { operation: 'refund', points: 2 }, undefined));
  for (const outcome of await store.consume(key, limits, [1], undefined)) note(outcome);
  note(await store.adjust!(key, limits, { operation: 'penalize', points: 1 }, undefined));
  note(await store.adjust!(key, limits, { operation: 'peek' }, undefined));
  for (const outcome of await store.consume(key, limits, [1, 0], undefined)) note(outcome);
  return trace;
}

describe.skipIf(skip !== undefined)(
  'windowOffsetMs on Redis: functions and scripts decide as the memory store',
  () => {
    let client: Redis;
    beforeAll(async () => {
      client = new Redis(serviceUrl('redis'), { ...recommendedRedisOptions, lazyConnect: true });
      await client.connect();
    });
    afterAll(async () => {
      await client.quit();
    });

    for (const functions of [true, false])
      it(`the same decisions on every path (${functions ? 'functions' : 'scripts'})`, async () => {
        const redis = new RedisStore({ client, prefix: `${uniqueName('rl-offset')}:`, functions });
        const memory = new MemoryStore();
        // The offset window ends about 20 s from now.
        const offset = (Date.now() + 20_000) % windowMs;
        const cases: { limits: LimitPolicy[]; key: () => string; offsets: (key: string) => number[] }[] = [
          ...(['fixed-window', 'sliding-window'] as const).flatMap((algorithm) => [
            {
              limits: [{ name: 'a', algorithm, limit: 4, windowMs, windowOffsetMs: offset }],
              key: () => `wo:${uniqueName('k')}`,
              offsets: () => [offset],
            },
            {
              limits: [{ name: 'a', algorithm, limit: 4, windowMs, windowOffsetMs: 'key' as const }],
              key: keyAwayFromEdge,
              offsets: (key: string) => [keyWindowOffset(key, windowMs)],
            },
            // Two limits: the scripts' batch form (check_group), one on the epoch's grid.
            {
              limits: [
                { name: 'a', algorithm, limit: 4, windowMs, windowOffsetMs: 'key' as const },
                { name: 'b', algorithm: 'fixed-window' as const, limit: 100, windowMs: 3_600_000 },
              ],
              key: keyAwayFromEdge,
              offsets: (key: string) => [keyWindowOffset(key, windowMs), 0],
            },
          ]),
        ];
        try {
          for (const { limits, key, offsets } of cases) {
            const k = key();
            const [onRedis, inMemory] = [
              await history(redis, k, limits, offsets(k)),
              await history(memory, k, limits, offsets(k)),
            ];
            expect(onRedis.join(' | ')).not.toContain('OFF GRID');
            expect(onRedis).toEqual(inMemory);
          }
          // The batch form with an auto-block, several keys in one call, each with its own offset.
          const limits: LimitPolicy[] = [
            { name: 'a', algorithm: 'fixed-window', limit: 1, windowMs, windowOffsetMs: 'key' },
          ];
          const block = {
            violations: 100,
            withinMs: 1_000,
            blockMs: 1_000,
            multiplier: 1,
            maxBlockMs: 1_000,
            forgetAfterMs: 1_000,
          };
          const keys = [keyAwayFromEdge(), keyAwayFromEdge(), keyAwayFromEdge()];
          const requests = keys.map((each) => ({ key: each, limits, costs: [1, 1] }));
          const batch = await redis.consumeMany(requests, block);
          for (const [index, outcomes] of batch.entries()) {
            expect(outcomes.map((outcome) => outcome.decisions[0]!.allowed)).toEqual([true, false]);
            expect(
              offGrid(
                Date.now() + outcomes[1]!.decisions[0]!.resetMs,
                keyWindowOffset(keys[index]!, windowMs),
              ),
            ).toBeLessThan(2_000);
          }
        } finally {
          await redis.close();
          await memory.close();
        }
      });

    it('RateLimit t and X-RateLimit-Reset name the offset window’s end, on Express and Fastify', async () => {
      for (const serve of [expressApp, fastifyApp]) {
        const prefix = `${uniqueName('rl-offset-http')}:`;
        // The window ends about 20 s from now (the epoch's minute anywhere from 0 to 60 s away).
        const offset = (Date.now() + 20_000) % windowMs;
        const limiter = createRateLimiter({
          store: new RedisStore({ client, prefix }),
          limits: [{ limit: 2, windowMs, windowOffsetMs: offset }],
          deadlineMs: 5_000,
        });
        const app = await serve(limiter, { headers: { legacy: true } });
        try {
          const response = await fetch(`${app.base}/`);
          expect(response.status).toBe(200);
          const t = Number(/;t=(\d+)$/.exec(response.headers.get('ratelimit') ?? '')?.[1]);
          expect(t).toBeGreaterThanOrEqual(18);
          expect(t).toBeLessThanOrEqual(21);
          const reset = Number(response.headers.get('x-ratelimit-reset')) * 1_000;
          expect(offGrid(reset, offset)).toBeLessThanOrEqual(1_000);
        } finally {
          await app.close();
          await limiter.close();
          const left = await client.keys(`${prefix}*`);
          if (left.length > 0) await client.del(...left);
        }
      }
    });
  },
);

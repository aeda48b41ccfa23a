import { recordingLogger, startPrivateRedisOrSkip } from '@noa/testkit';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createRateLimiter, type RateLimiter } from '../../src/index.js';
import { RedisStore } from '../../src/redis.js';
import { privateRedisConnections } from './redis-fixture.js';

// A production Redis out of memory (maxmemory reached, `noeviction`): every write fails with
// OOM. The limiter answers by its fail mode (never a raw error), counts the failures, and is back
// on the store soon after memory frees. A private server: maxmemory must not reach other suites.

const { redis, skip } = await startPrivateRedisOrSkip(['--maxmemory-policy', 'noeviction']);

async function sample(registry: Registry, name: string, labels: string): Promise<number> {
  const line = (await registry.metrics()).split('\n').find((text) => text.startsWith(`${name}{${labels}} `));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe.skipIf(skip !== undefined)('the limiter on a Redis out of memory', () => {
  const { admin, client } = privateRedisConnections(redis);

  it.each(['local', 'open', 'closed'] as const)(
    'failMode %s: new keys get the fail mode, spent keys stay refused, the store is back once memory frees',
    async (failMode) => {
      const registry = new Registry();
      const logger = recordingLogger();
      const limiter: RateLimiter = createRateLimiter({
        store: new RedisStore({ client, prefix: `oom-${failMode}:` }),
        limits: [{ limit: 1, windowMs: 3_600_000 }],
        failMode,
        deadlineMs: 2_000,
        breaker: { halfOpenAfterMs: 200 },
        registry,
        logger,
      });
      try {
        expect((await limiter.check('spent')).allowed).toBe(true);
        expect((await limiter.check('spent')).allowed).toBe(false);
        await admin.config('SET', 'maxmemory', '1');
        try {
          const results = [];
          for (let index = 0; index < 20; index += 1) results.push(await limiter.check(`new-${index}`));
          const expected = { local: 'fallback', open: 'fail-mode', closed: 'fail-mode' }[failMode];
          expect(new Set(results.map((result) => result.source))).toEqual(new Set([expected]));
          expect(results[0]!.allowed).toBe(failMode !== 'closed');
          // A key over its limit is refused whatever answers it (the store, its local cache).
          expect((await limiter.check('spent')).allowed).toBe(false);
          expect(
            await sample(registry, 'noa_rate_limiter_store_errors_total', `limiter="limiter",kind="error"`),
          ).toBeGreaterThan(0);
          expect(limiter.health().status).toBe(failMode === 'closed' ? 'down' : 'degraded');
          expect(logger.entriesAt('warn', 'error').length).toBeGreaterThan(0);
        } finally {
          await admin.config('SET', 'maxmemory', '0');
        }
        // Back on the store within a few half-open periods.
        const deadline = Date.now() + 5_000;
        let result = await limiter.check('after');
        while (result.source !== 'store' && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 50));
          result = await limiter.check(`after-${Date.now()}`);
        }
        expect(result.source).toBe('store');
        expect(result.allowed).toBe(true);
        expect(limiter.health().status).toBe('up');
        expect(limiter.fallbackActive).toBe(false);
      } finally {
        await limiter.close();
      }
    },
  );

  it('refund, penalty and block are answered by the fail mode (said by their source), reset still deletes', async () => {
    const limiter = createRateLimiter({
      store: new RedisStore({ client, prefix: 'oom-adjust:' }),
      limits: [{ limit: 2, windowMs: 3_600_000 }],
      deadlineMs: 2_000,
    });
    try {
      await limiter.check('k');
      await admin.config('SET', 'maxmemory', '1');
      try {
        const outcomes = await Promise.allSettled([
          limiter.refund('k'),
          limiter.penalize('k', 1),
          limiter.block('k', 60_000),
        ]);
        // Not stored: the result says so (a block answered by the fallback holds on this instance only).
        expect(
          outcomes.map((outcome) => (outcome.status === 'fulfilled' ? outcome.value.source : outcome.reason)),
        ).toEqual(['fallback', 'fallback', 'fallback']);
        expect(await limiter.reset('k')).toBe(true);
      } finally {
        await admin.config('SET', 'maxmemory', '0');
      }
    } finally {
      await limiter.close();
    }
  });
});

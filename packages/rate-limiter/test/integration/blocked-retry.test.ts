import type { AddressInfo } from 'node:net';
import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import express from 'express';
import { describe, expect, it } from 'vitest';
import { expressRateLimit } from '../../src/express.js';
import { createRateLimiter, type LimitInput, type RateLimiterOptions } from '../../src/index.js';
import { RedisStore } from '../../src/redis.js';
import { targetConnection } from './redis-fixture.js';
import { targets } from './redis-targets.js';

const redisUp = await isReachable('redis');
const skip = redisUp ? undefined : `skipped: no Redis at ${serviceUrl('redis')}`;
if (skip) console.log(skip);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// One point every 1.5 s, and a block of 400 ms: a key blocked just after its point was spent gets its quota back some 1 s after the
// block ends. Every check during the block must say so (as the
// refusal that started it does), from the Lua scripts' three paths: one limit without auto-block
// (a manual block), several without, and auto-block. The local block cache is off, so that each
// check is the store's answer (as another instance's check would be).
const bucket: LimitInput = { name: 'bucket', algorithm: 'token-bucket', limit: 1, windowMs: 1_500 };
const hourly: LimitInput = { name: 'hourly', limit: 100, windowMs: 3_600_000 };
const autoBlock = { violations: 1, withinMs: 60_000, blockMs: 400 };

describe.skipIf(skip !== undefined).each(targets)('a check during a block on $name', (target) => {
  const connection = targetConnection(target);
  const limiterOf = (options: Omit<RateLimiterOptions, 'store'>) =>
    createRateLimiter({
      store: new RedisStore({ client: connection.client, prefix: `${uniqueName('rlbr')}:` }),
      deadlineMs: 5_000,
      localBlockCache: false,
      ...options,
    });

  it.each([
    { path: 'one limit, manual block', limits: [bucket], auto: false },
    { path: 'two limits, manual block', limits: [bucket, hourly], auto: false },
    { path: 'auto-block', limits: [bucket], auto: true },
    { path: 'auto-block, two limits', limits: [bucket, hourly], auto: true },
  ])('$path: retryAfterMs is the quota’s return, blockedMs the block’s', async ({ limits, auto }) => {
    const limiter = limiterOf(auto ? { limits, autoBlock } : { limits });
    try {
      expect((await limiter.check('k')).allowed).toBe(true);
      if (auto) expect((await limiter.check('k')).outcome).toBe('blocked');
      else await limiter.block('k', 400);
      await sleep(100);
      const during = await limiter.check('k');
      expect(during.outcome).toBe('blocked');
      const blockedMs = during.source === 'fail-mode' ? undefined : during.blockedMs;
      expect(blockedMs).toBeGreaterThan(0);
      expect(blockedMs).toBeLessThanOrEqual(400);
      // The bucket's point comes back 1.5 s after it was spent: some 1.4 s, well after the block.
      expect(during.retryAfterMs).toBeGreaterThan(1_000);
      expect(during.retryAfterMs).toBeLessThanOrEqual(1_500);
      expect(during.limits.find((limit) => limit.name === 'bucket')!.retryAfterMs).toBe(during.retryAfterMs);
      // Obeying it: admitted.
      await sleep(during.retryAfterMs + 20);
      expect((await limiter.check('k')).allowed).toBe(true);
    } finally {
      await limiter.close();
    }
  });

  it('over HTTP: a client that obeys Retry-After during an auto-block is admitted', async () => {
    const limiter = limiterOf({ limits: [bucket], autoBlock });
    const app = express();
    app.get('/', expressRateLimit({ limiter }), (_req, res) => {
      res.send('ok');
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const get = async () => {
      const response = await fetch(base);
      await response.arrayBuffer();
      return response;
    };
    try {
      expect((await get()).status).toBe(200);
      expect((await get()).status).toBe(429);
      await sleep(100);
      const during = await get();
      expect(during.status).toBe(429);
      const retryAfter = Number(during.headers.get('retry-after'));
      // The bucket's 1.4 s (rounded up: 2), not the block's last 300 ms (1).
      expect(retryAfter).toBe(2);
      await sleep(retryAfter * 1_000);
      expect((await get()).status).toBe(200);
    } finally {
      await new Promise((resolve) => server.close(() => resolve(undefined)));
      await limiter.close();
    }
  });
});

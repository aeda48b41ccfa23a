import type { AddressInfo } from 'node:net';
import { generousDeadlineMs, isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import express from 'express';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { expressRateLimit } from '../../src/express.js';
import { abnormalUsageDetectedType, createRateLimiter } from '../../src/index.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';

// A block written to Redis by one instance (an admin's block(), or another instance's auto-block)
// is answered by every instance's middleware as abnormal usage (draft-10 section 5.3), with the
// status of its `blockedStatus`, over real HTTP.

const redisUp = await isReachable('redis');
if (!redisUp) console.log(`skipped: no Redis at ${serviceUrl('redis')}`);

describe.skipIf(!redisUp)('a block on the shared Redis, over HTTP', () => {
  const client = new Redis(serviceUrl('redis'), { ...recommendedRedisOptions, lazyConnect: true });
  const closers: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const close of closers.reverse()) await close();
    await client.quit();
  });

  it("another instance's block() is a 403 abnormal-usage-detected with Retry-After under blockedStatus: 403", async () => {
    await client.connect();
    const prefix = `${uniqueName('rlblock')}:`;
    const limits = [{ name: 'burst', limit: 5, windowMs: 60_000 }];
    const admin = createRateLimiter({
      limits,
      store: new RedisStore({ client, prefix }),
      deadlineMs: generousDeadlineMs,
    });
    const serving = createRateLimiter({
      limits,
      store: new RedisStore({ client, prefix }),
      deadlineMs: generousDeadlineMs,
    });
    closers.push(
      () => admin.close(),
      () => serving.close(),
    );
    const app = express();
    app.get('/', expressRateLimit({ limiter: serving, blockedStatus: 403 }), (_req, res) => {
      res.send('ok');
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    closers.push(() => new Promise((resolve) => server.close(resolve)));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    expect((await fetch(base)).status).toBe(200);
    await admin.block('ip:127.0.0.1', 120_000);
    const refused = await fetch(base);
    expect(refused.status).toBe(403);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(115);
    expect(Number(refused.headers.get('retry-after'))).toBeLessThanOrEqual(120);
    expect(await refused.json()).toMatchObject({ type: abnormalUsageDetectedType, status: 403 });
    // Reset (on the serving instance: another's reaches its local cache of refusals within 1 s):
    // the key had state, its count and its block, and is free again.
    expect(await serving.reset('ip:127.0.0.1')).toBe(true);
    expect(await admin.reset('ip:127.0.0.1')).toBe(false);
    expect((await fetch(base)).status).toBe(200);
  });
});

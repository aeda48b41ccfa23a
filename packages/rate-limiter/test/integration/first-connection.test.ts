import { once } from 'node:events';
import { type PrivateRedis, startPrivateRedis } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { createRateLimiter } from '../../src/index.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';

// Until a client's first connection, the store holds checks back instead of sending them (with
// the offline queue off, ioredis would fail them at once). The limiter stops waiting at its
// deadline and answers by its fail mode: a check it has answered so must not reach Redis when the
// connection finally comes, or every request of the outage would count at once (no expiry can
// skip it: the store knows nothing of the server's clock before its first reply).

let redis: PrivateRedis | undefined;
let skip: string | undefined;
try {
  redis = await startPrivateRedis();
} catch (error) {
  skip = `skipped: no redis-server binary to start a private Redis (${(error as Error).message})`;
  console.log(skip);
}

describe.skipIf(skip !== undefined)('checks made before the first connection', () => {
  const clients: Redis[] = [];
  afterAll(async () => {
    for (const client of clients) client.disconnect();
    await redis?.stop();
  });

  it('are answered by the fail mode at their deadline and never counted once Redis comes', async () => {
    await redis!.kill();
    const client = new Redis(redis!.url, { ...recommendedRedisOptions, retryStrategy: () => 50 });
    client.on('error', () => {});
    clients.push(client);
    const store = new RedisStore({ client, prefix: 'first-connection:' });
    const limits = [{ limit: 100, windowMs: 3_600_000 }];
    const limiter = createRateLimiter({
      store,
      limits,
      failMode: 'open',
      deadlineMs: 25,
      // Every check is attempted (held back, then given up), none skipped by an open breaker.
      breaker: { consecutiveFailures: 1_000 },
      localBlockCache: false,
    });
    // The checks after the connection, on the same store: the store's answers are what they
    // assert, so their deadline is generous. With the 25 ms one, a loaded machine (the first call
    // also loads the function library: three round trips) got the fail mode for them.
    const patient = createRateLimiter({
      store,
      limits,
      failMode: 'open',
      deadlineMs: 5_000,
      localBlockCache: false,
    });
    for (let index = 0; index < 10; index += 1) {
      const started = performance.now();
      expect(await limiter.check('outage')).toMatchObject({ allowed: true, source: 'fail-mode' });
      // At the deadline, plus a slack for a loaded machine's late timers: not held for the connection.
      expect(performance.now() - started).toBeLessThan(25 + 1_000);
    }
    await redis!.restart();
    // The client reconnects every 50 ms: it may be ready before restart() returns.
    if (client.status !== 'ready') await once(client, 'ready');
    // A check after the connection is the store's, and comes after anything held back.
    expect(await patient.check('after')).toMatchObject({ source: 'store' });
    expect(await patient.peek('outage')).toMatchObject({ remaining: 100 });
    await patient.close();
    await limiter.close();
  });
});

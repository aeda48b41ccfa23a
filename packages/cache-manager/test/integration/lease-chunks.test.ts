import { type PrivateRedis, startPrivateRedisOrSkip } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';
import { HoldingProxy } from './holding-proxy.js';

const started = await startPrivateRedisOrSkip();

/**
 * getOrSetMany takes its leases 256 at a time: a chunk that fails after earlier ones were taken
 * must not leave those held (every other instance would wait on them for `leaseMs`).
 */
describe.skipIf(started.skip !== undefined)('getOrSetMany lease chunks', () => {
  let server: PrivateRedis;
  let admin: Redis;
  let proxy: HoldingProxy;
  const clients: Redis[] = [];
  const caches: Cache[] = [];

  beforeAll(async () => {
    server = started.redis!;
    admin = new Redis(server.url);
    proxy = await HoldingProxy.start(server.port);
  });

  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
    for (const client of clients) client.disconnect();
    admin?.disconnect();
    await proxy?.close();
    await server?.stop();
  });

  it('a lease chunk that fails (onBackendError throw) leaves none of the call’s leases held', async () => {
    const client = new Redis(proxy.url);
    client.on('error', () => {});
    clients.push(client);
    const cache = new Cache({
      redis: client,
      prefix: 'chunks:',
      onBackendError: 'throw',
      // Only the held chunk may run out of time: with 200 ms the L2 read before the leases did
      // too on a loaded machine, and the call failed before any lease was asked.
      operationTimeoutMs: 1_000,
      // Kept closed: while open it lets no release through, and `leaseMs` alone frees the leases
      // (as for any holder that loses Redis).
      breaker: { consecutiveFailures: 100_000 },
      lock: { leaseMs: 60_000 },
    });
    caches.push(cache);
    await cache.ready();
    const keys = Array.from({ length: 600 }, (_, index) => `k${index}`);
    // The first chunk's 256 SET NX go through; the second's wait past their deadline.
    proxy.holdMatching = /\r\nNX\r\n/gi;
    proxy.passMatches = 256;
    const call = cache.getOrSetMany(keys, async (missing) => missing.map((key) => key.toUpperCase()));
    await proxy.held();
    await expect(call).rejects.toMatchObject({ code: 'NOA_CACHE_BACKEND_UNAVAILABLE' });
    proxy.release();
    // The held SET NX land after the call gave up; its releases follow them on the connection.
    const deadline = Date.now() + 5_000;
    while (Date.now() < deadline && (await admin.keys('chunks:__lease:*')).length > 0) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(await admin.keys('chunks:__lease:*')).toEqual([]);
  }, 30_000);
});

import { type PrivateRedis, startPrivateRedisOrSkip } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';

const started = await startPrivateRedisOrSkip();

/**
 * Batch calls with tens of thousands of keys, under the default 500 ms `operationTimeoutMs`:
 * every Redis call must get its answer within its own deadline, not queue behind the rest of
 * the batch past it (failures that open the breaker while the commands still land).
 */
describe.skipIf(started.skip !== undefined)('large batches', () => {
  let server: PrivateRedis;
  let admin: Redis;
  const clients: Redis[] = [];
  const caches: Cache[] = [];

  beforeAll(() => {
    server = started.redis!;
    admin = new Redis(server.url);
  });

  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
    for (const client of clients) client.disconnect();
    admin?.disconnect();
    await server?.stop();
  });

  async function open(): Promise<Cache> {
    const client = new Redis(server.url);
    client.on('error', () => {});
    clients.push(client);
    const cache = new Cache({ redis: client, prefix: 'batch:', l1: { maxEntries: 100_000 } });
    caches.push(cache);
    await cache.ready();
    return cache;
  }

  it('getOrSetMany of 20,000 cold keys caches them all and leaves no lease behind', async () => {
    const cache = await open();
    const keys = Array.from({ length: 20_000 }, (_, index) => `k${index}`);
    let factoryCalls = 0;
    const values = await cache.getOrSetMany(keys, async (missing) => {
      factoryCalls += 1;
      return missing.map((key) => key.toUpperCase());
    });
    expect(factoryCalls).toBe(1);
    expect(values).toEqual(keys.map((key) => key.toUpperCase()));
    expect(cache.stats().l2Errors).toBe(0);
    expect(cache.stats().l2).toBe('closed');
    // The leases were all released: another instance would otherwise wait on each for `leaseMs`.
    expect(await admin.keys('batch:__lease:*')).toEqual([]);
    const other = await open();
    expect(await other.getMany(keys)).toEqual(values);
  }, 60_000);

  it('setMany of 100,000 tagged entries reaches L2 without a call past its deadline', async () => {
    const cache = await open();
    const keys = Array.from({ length: 100_000 }, (_, index) => `s${index}`);
    await cache.setMany(keys.map((key) => ({ key, value: { key, pad: 'x'.repeat(100) }, tags: ['many'] })));
    expect(cache.stats().l2Errors).toBe(0);
    expect(cache.stats().l2).toBe('closed');
    const other = await open();
    expect((await other.getMany(keys)).filter((value) => value === undefined).length).toBe(0);
  }, 60_000);
});

import { delay } from '@noa/core';
import { type PrivateRedis, startPrivateRedisOrSkip } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';

const started = await startPrivateRedisOrSkip();

const instances = 4;
const hotKeys = Array.from({ length: 20 }, (_, index) => `hot:${index}`);

/**
 * A shared outage long enough for every instance to lose more than 10,000 writes: each must
 * have every L1 dropped once (what it lost is too much to name), but a root clear from each
 * instance dropped every L1 once per instance, each time while the others were refilling.
 */
describe.skipIf(started.skip !== undefined)('root clears after a shared outage', () => {
  let server: PrivateRedis;
  const clients: Redis[] = [];
  const caches: Cache[] = [];

  beforeAll(() => {
    server = started.redis!;
  });

  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
    for (const client of clients) client.disconnect();
    await server?.stop();
  });

  function open(): Cache {
    const client = new Redis(server.url, { maxRetriesPerRequest: 1 });
    client.on('error', () => {});
    clients.push(client);
    const cache = new Cache({
      redis: client,
      prefix: 'storm:',
      operationTimeoutMs: 150,
      // Room for the lost writes, so that they do not evict the hot keys being measured.
      l1: { maxEntries: 50_000 },
      breaker: { consecutiveFailures: 3, halfOpenAfterMs: 300 },
    });
    caches.push(cache);
    return cache;
  }

  const readHot = (cache: Cache) =>
    Promise.all(hotKeys.map((key) => cache.getOrSet(key, () => `value of ${key}`, { ttlMs: 600_000 })));

  it('instances that each lost over 10,000 writes drop the others’ L1 once between them, not once each', async () => {
    const all = Array.from({ length: instances }, open);
    await Promise.all(all.map((cache) => cache.ready()));
    for (const cache of all) await readHot(cache);
    const rootClears = all.map(() => 0);
    for (const [index, cache] of all.entries()) {
      cache.onInvalidation((message) => {
        if (message.t === 'clear' && message.k.includes('')) rootClears[index]! += 1;
      });
    }

    // Frozen until every instance has made its lost writes: a timed outage (a 1.5 s CLIENT
    // PAUSE) ended, on a loaded machine, before the breakers opened or while 10,001 values were
    // still being encoded, so some writes reached Redis, too few were lost for a root clear, and
    // the values written stayed in L1 as they should. (CLIENT UNPAUSE waits for the pause.)
    server.freeze();
    try {
      await Promise.all(
        all.map(async (cache, index) => {
          for (let round = 0; round < 20 && cache.stats().l2 !== 'open'; round += 1)
            await cache.get(`probe:${index}:${round}`);
          expect(cache.stats().l2).toBe('open');
          // Only this instance's L1 gets them: the breaker skips L2 and the bus (a half-open
          // probe among them times out).
          await cache.setMany(
            Array.from({ length: 10_001 }, (_, key) => ({ key: `lost:${index}:${key}`, value: key })),
          );
        }),
      );
    } finally {
      server.resume();
    }
    const recovered = Date.now() + 15_000;
    while (Date.now() < recovered && all.some((cache) => cache.stats().l2 !== 'closed')) {
      await Promise.all(all.map((cache) => cache.get('probe:recovery')));
      await delay(100);
    }
    for (const cache of all) expect(cache.stats().l2).toBe('closed');

    // Every instance keeps reading its hot keys while the lost writes are resolved.
    for (const cache of all) cache.resetStats();
    const until = Date.now() + 3_000;
    while (Date.now() < until) {
      await Promise.all(all.map(readHot));
      await delay(50);
    }
    const stats = all.map((cache) => cache.stats());
    const l2Reads = stats.reduce((sum, { hits, misses }) => sum + hits.l2 + misses, 0);
    const factoryRuns = stats.reduce((sum, { factoryRuns: runs }) => sum + runs, 0);
    const received = rootClears.reduce((sum, count) => sum + count, 0);
    console.log(
      `shared outage, ${instances} instances, ${hotKeys.length} hot keys: root clears received ${received}, ` +
        `hot-key L2 reads ${l2Reads}, factory runs ${factoryRuns} in the 3 s after recovery`,
    );
    // Every instance's own lost writes are gone from its L1, and the others' too.
    for (const [index, cache] of all.entries()) expect(cache.getLocal(`lost:${index}:0`)).toBeUndefined();
    // One root clear reaches every other instance (two when recoveries straddle the window).
    expect(received).toBeGreaterThanOrEqual(instances - 1);
    expect(received).toBeLessThanOrEqual(2 * (instances - 1));
    // Each drop, an instance's own or a clear received, costs one L2 read per hot key at most.
    expect(l2Reads).toBeLessThanOrEqual((instances + received) * hotKeys.length);
  });

  it('an instance that finds the root-clear lease held by one that died sends the root clear itself', async () => {
    const [writer, reader] = [open(), open()];
    await Promise.all([writer.ready(), reader.ready()]);
    await reader.set('unrelated', 'kept');
    expect(await reader.get('unrelated')).toBe('kept');
    const admin = new Redis(server.url);
    clients.push(admin);
    // Another instance took the lease for this outage's root clear and was killed before sending it.
    // Set before the outage, it lasts until 2.5 s past the recovery (a real holder's lasts 2 s).
    await admin.set('storm:__root-clear', 'dead-instance', 'PX', 60_000);
    // Frozen until the lost writes are made (see the test above).
    server.freeze();
    try {
      for (let round = 0; round < 20 && writer.stats().l2 !== 'open'; round += 1)
        await writer.get(`probe:dead:${round}`);
      expect(writer.stats().l2).toBe('open');
      await writer.setMany(
        Array.from({ length: 10_001 }, (_, key) => ({ key: `lost:dead:${key}`, value: key })),
      );
    } finally {
      server.resume();
    }
    await admin.pexpire('storm:__root-clear', 2_500);
    // The writer finds the lease taken, drops its own L1 and waits for a clear that never comes.
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline && reader.getLocal('unrelated') !== undefined) {
      await writer.get('probe:recovery');
      await delay(100);
    }
    expect(reader.getLocal('unrelated')).toBeUndefined();
    expect(writer.getLocal('lost:dead:0')).toBeUndefined();
  }, 30_000);
});

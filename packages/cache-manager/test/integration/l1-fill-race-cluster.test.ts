import { generousDeadlineMs, startRedisClusterOrSkip } from '@noa/testkit';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';

const { cluster, skip } = await startRedisClusterOrSkip(3);

/** `l1-fill-race.test.ts` on a Redis Cluster (reads and writes of one key go to one master). */
describe.skipIf(skip !== undefined)('an L1 fill racing a change of its key, on a Redis Cluster', () => {
  const clients: Cluster[] = [];
  const caches: Cache[] = [];
  let reader: Cache;
  let writer: Cache;
  const open = async () => {
    const client = new Cluster(cluster!.nodes);
    clients.push(client);
    await new Promise<void>((resolve) => client.once('ready', () => resolve()));
    const cache = new Cache({
      redis: client,
      prefix: 'fill:',
      ttlMs: 60_000,
      operationTimeoutMs: generousDeadlineMs,
    });
    caches.push(cache);
    await cache.ready();
    return cache;
  };
  beforeAll(async () => {
    reader = await open();
    writer = await open();
  });
  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
    for (const client of clients) client.disconnect();
    await cluster?.stop();
  });

  const readers: Record<string, (cache: Cache, key: string) => Promise<unknown>> = {
    get: (cache, key) => cache.get(key),
    getOrSet: (cache, key) => cache.getOrSet(key, async () => 'factory'),
    getMany: (cache, key) => cache.getMany([key, `${key}-other`]),
    getOrSetMany: (cache, key) => cache.getOrSetMany([key], async (keys) => keys.map(() => 'factory')),
    has: (cache, key) => cache.has(key),
  };
  const changes: Record<string, { run: (cache: Cache, key: string) => Promise<unknown>; after?: string }> = {
    set: { run: (cache, key) => cache.set(key, 'new'), after: 'new' },
    delete: { run: (cache, key) => cache.delete(key) },
    expire: { run: (cache, key) => cache.expire(key) },
  };
  for (const [readerName, read] of Object.entries(readers)) {
    for (const [changeName, change] of Object.entries(changes)) {
      it(`${readerName} in flight, then an awaited ${changeName}: the change holds in L1`, async () => {
        for (let trial = 0; trial < 5; trial += 1) {
          const key = `${readerName}-${changeName}-${trial}`;
          await writer.set(key, 'old');
          const reading = read(reader, key);
          await change.run(reader, key);
          await reading;
          const after: unknown[] = [change.after];
          if (readerName.startsWith('getOrSet') && change.after === undefined) after.push('factory');
          expect(after).toContain(reader.getLocal(key) ?? change.after);
          expect(after).toContain(await reader.get(key));
        }
      });
    }
  }
});

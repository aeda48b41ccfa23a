import { delay } from '@noa/core';
import { uniqueName } from '@noa/testkit';
import { Cluster } from 'ioredis';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { Cache } from '../../src/index.js';
import type { RedisClient } from '../../src/l2/redis-client.js';
import { dropPrefix, Redis, redisUp, redisUrl } from './helpers.js';
import { usePrivateCluster } from './redis-server.js';

/** Waits for `read` to miss: the other instance's L1 is evicted by a bus message, a moment later. */
async function gone(read: () => Promise<unknown>): Promise<void> {
  await vi.waitFor(async () => expect(await read()).toBeUndefined(), { timeout: 5_000, interval: 20 });
}

/** What reads Redis without the client's `keyPrefix`: `exists` of raw key names. */
type RawExists = (...keys: string[]) => Promise<number>;

/**
 * Every operation of two caches whose ioredis clients add a `keyPrefix`: ioredis prefixes keys
 * but not SCAN's MATCH pattern, and gives back SCAN's keys with the prefix, which UNLINK then
 * prefixes again: `clear()` deleted nothing.
 */
async function exercise(clients: () => RedisClient, keyPrefix: string, exists: RawExists): Promise<void> {
  const prefix = `${uniqueName('cm_kp')}:`;
  const raw = `${keyPrefix}${prefix}`;
  // A generous deadline: a lease attempt given up on a loaded machine would compute twice.
  const a = new Cache({ redis: clients(), prefix, operationTimeoutMs: 2_000 });
  const b = new Cache({ redis: clients(), prefix, operationTimeoutMs: 2_000 });
  try {
    await Promise.all([a.ready(), b.ready()]);
    await a.set('k', 1, { tags: ['t'] });
    expect(await exists(`${raw}v:k`, `${raw}__tag:t`)).toBe(2);
    expect(await b.get('k')).toBe(1);
    expect(await a.deleteByTag('t')).toBe(1);
    expect(await exists(`${raw}v:k`)).toBe(0);
    await gone(() => b.get('k'));

    await a.namespace('ns').set('x', 2);
    await a.set('kept', 3);
    expect(await b.namespace('ns').get('x')).toBe(2);
    await a.namespace('ns').clear();
    expect(await exists(`${raw}v::ns::x`)).toBe(0);
    expect(await exists(`${raw}v:kept`)).toBe(1);
    await gone(() => b.namespace('ns').get('x'));

    await a.set('tagged', 4, { tags: ['u'] });
    // In b's L1, so that its eviction below shows b has applied the clear: one still in flight
    // would supersede the factory run of the stampede after it.
    expect(await b.get('kept')).toBe(3);
    await a.clear();
    expect(await exists(`${raw}v:kept`, `${raw}v:tagged`, `${raw}__tag:u`)).toBe(0);
    await gone(() => b.get('kept'));

    // Leases keep their single flight across the instances.
    let runs = 0;
    const slow = async () => {
      runs += 1;
      await delay(300);
      return 'v';
    };
    expect(await Promise.all([a.getOrSet('s', slow), b.getOrSet('s', slow)])).toEqual(['v', 'v']);
    expect(runs).toBe(1);
  } finally {
    await a.close();
    await b.close();
  }
}

describe.skipIf(!redisUp)('a Redis client with keyPrefix', () => {
  const keyPrefix = `${uniqueName('cm_kpc')}:`;
  const clients: Redis[] = [];
  const plain = redisUp ? new Redis(redisUrl) : undefined;
  afterAll(async () => {
    for (const client of clients) client.disconnect();
    await dropPrefix(keyPrefix);
    plain?.disconnect();
  });

  it('works in full: reads, writes, tags, namespace and root clear, leases', async () => {
    await exercise(
      () => {
        const client = new Redis(redisUrl, { keyPrefix });
        clients.push(client);
        return client;
      },
      keyPrefix,
      (...keys) => plain!.exists(...keys),
    );
  });
});

const cluster = usePrivateCluster('a private Redis Cluster with keyPrefix');

describe.skipIf(!cluster.installed)('a Redis Cluster client with keyPrefix', () => {
  const clients: Cluster[] = [];
  afterAll(() => {
    for (const client of clients) client.disconnect();
  });
  const open = (options: ConstructorParameters<typeof Cluster>[1]) => () => {
    const client = new Cluster(cluster.nodes(), options);
    clients.push(client);
    return client;
  };
  // One key per EXISTS: a Cluster refuses keys of different slots in one command.
  const exists: RawExists = async (...keys) => {
    let found = 0;
    for (const key of keys) found += await cluster.client().exists(key);
    return found;
  };

  it('works in full with the Cluster option keyPrefix', async () => {
    await exercise(open({ keyPrefix: 'kpc:' }), 'kpc:', exists);
  });

  it('works in full with keyPrefix in redisOptions (the nodes prefix too)', async () => {
    await exercise(open({ redisOptions: { keyPrefix: 'kpr:' } }), 'kpr:', exists);
  });
});

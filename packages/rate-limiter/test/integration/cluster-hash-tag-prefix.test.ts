import { once } from 'node:events';
import { startRedisClusterOrSkip } from '@noa/testkit';
import { Cluster, Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, createRateLimiter } from '../../src/index.js';
import { RedisStore, recommendedClusterOptions } from '../../src/redis.js';
import { clusterSlot } from '../../src/stores/cluster-slot.js';

// Braces in the prefixes in front of a key on a real 3-master Cluster. A whole tag there
// (`{app}:`, or an ioredis keyPrefix `{tenant}:`, as advised for other clients' multi-key
// commands) puts every key of the store in that tag's slot: checks of sliding logs (a hash and
// sets per key), adjustments and resetAll still work. An empty tag (`{}`) made Redis hash each
// key whole: every sliding-log check and every adjustment failed with CROSSSLOT (answered by the
// fail mode, for good); such prefixes are now refused at construction (unit: hash-tag-prefix.test.ts).

const { cluster, skip } = await startRedisClusterOrSkip(3);

describe.skipIf(skip !== undefined)('prefixes with hash tags on a Redis Cluster', () => {
  const clients: Cluster[] = [];
  async function connect(keyPrefix?: string): Promise<Cluster> {
    const client = new Cluster(cluster!.nodes, {
      ...recommendedClusterOptions,
      ...(keyPrefix === undefined ? {} : { keyPrefix }),
    });
    client.on('error', () => {});
    clients.push(client);
    await once(client, 'ready');
    return client;
  }

  afterAll(async () => {
    for (const client of clients) client.disconnect();
    await cluster?.stop();
  });

  for (const { storePrefix, keyPrefix } of [
    { storePrefix: '{app}:', keyPrefix: undefined },
    { storePrefix: 'noa:rl:', keyPrefix: '{tenant}:' },
    { storePrefix: 'x{', keyPrefix: undefined },
  ])
    it(`store prefix ${storePrefix}, keyPrefix ${keyPrefix ?? 'none'}: checks, adjustments and resetAll reach Redis`, async () => {
      const client = await connect(keyPrefix);
      const limiter = createRateLimiter({
        store: new RedisStore({ client, prefix: `${storePrefix}${process.pid}:` }),
        limits: [
          { name: 'log', algorithm: 'sliding-log', limit: 2, windowMs: 60_000 },
          { name: 'day', algorithm: 'fixed-window', limit: 5, windowMs: 86_400_000 },
        ],
        deadlineMs: 2_000,
        failMode: 'open',
      });
      try {
        const results = [];
        for (const key of ['u1', 'u2', 'u1', 'u1']) results.push(await limiter.check(key));
        expect(results.map((result) => [result.source, result.allowed])).toEqual([
          ['store', true],
          ['store', true],
          ['store', true],
          ['store', false],
        ]);
        expect((await limiter.refund('u1')).remaining).toBe(1);
        expect((await limiter.block('u2', 60_000)).outcome).toBe('blocked');
        await limiter.resetAll();
        const fresh = await limiter.check('u2');
        expect([fresh.source, fresh.allowed, fresh.remaining]).toEqual(['store', true, 1]);
      } finally {
        await limiter.close();
      }
    });

  it('with a keyPrefix tag, the library goes to the master holding the keys: one failed FCALL, one load, no other master asked', async () => {
    // ioredis routes by the prefixed key (`{tenant}:noa:rl:{…}` hashes as `tenant`); the store
    // must find the same master for what it does per key: loading its library, the clock its
    // deadline is stamped in, which master to wait for.
    const client = await connect('{tenant}:');
    const store = new RedisStore({ client, prefix: 'lib:' });
    const limits = [{ name: 'day', algorithm: 'fixed-window' as const, limit: 100, windowMs: 86_400_000 }];
    const holder = client.slots[clusterSlot('{tenant}:')]![0]!;
    // A key whose own tag would hash to another master than the tenant's.
    const key = Array.from({ length: 50 }, (_, index) => `user-${index}`).find(
      (candidate) => client.slots[clusterSlot(`lib:{${candidate}}`)]![0] !== holder,
    )!;
    await store.consume(key, limits, [1], undefined);
    const admins = cluster!.nodes.map(({ host, port }) => new Redis(port, host));
    try {
      const admin = admins.find((node) => `${node.options.host}:${node.options.port}` === holder)!;
      await admin.call('FUNCTION', 'FLUSH');
      await Promise.all(admins.map((node) => node.config('RESETSTAT')));
      const [outcome] = await store.consume(key, limits, [1], undefined);
      expect(outcome!.decisions[0]).toMatchObject({ allowed: true, remaining: 98 });
      expect(store.usesFunctions).toBe(true);
      const stats = await admin.info('commandstats');
      expect(stats).toMatch(/cmdstat_fcall:calls=2,.*failed_calls=1\b/);
      expect(stats).toMatch(/cmdstat_function\|load:calls=1,/);
      for (const other of admins.filter((node) => node !== admin))
        expect(await other.info('commandstats')).not.toMatch(/cmdstat_(fcall|function\|load|evalsha|eval):/);
    } finally {
      for (const admin of admins) admin.disconnect();
    }
  });

  it('an empty tag in the store prefix or the keyPrefix is refused before any call', async () => {
    const client = await connect('x{}');
    expect(() => new RedisStore({ client })).toThrow(ConfigError);
    const plain = await connect();
    expect(() => new RedisStore({ client: plain, prefix: 'a{}:' })).toThrow(ConfigError);
  });
});

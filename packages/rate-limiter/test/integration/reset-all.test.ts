import { awayFromWindowEdge, isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import type { Cluster, Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { createRateLimiter, type RateLimiter } from '../../src/index.js';
import { RedisStore } from '../../src/redis.js';
import { targetConnection } from './redis-fixture.js';
import { targets } from './redis-targets.js';

const redisUp = await isReachable('redis');
const skip = redisUp ? undefined : `skipped: no Redis at ${serviceUrl('redis')}`;
if (skip) console.log(skip);

/** Every key matching `pattern` on the server, or on every master of a Cluster. */
async function keysMatching(client: Redis | Cluster, pattern: string): Promise<string[]> {
  const servers = (client as Cluster).isCluster ? (client as Cluster).nodes('master') : [client as Redis];
  const found: string[] = [];
  for (const server of servers) {
    let cursor = '0';
    do {
      const [next, keys] = await server.scan(cursor, 'MATCH', pattern, 'COUNT', 1_000);
      cursor = next;
      found.push(...keys);
    } while (cursor !== '0');
  }
  return found;
}

/** A client like `client` whose keys all carry ioredis's `keyPrefix`. */
async function withKeyPrefix(client: Redis | Cluster, keyPrefix: string): Promise<Redis | Cluster> {
  if ((client as Cluster).isCluster) return (client as Cluster).duplicate([], { keyPrefix });
  const made = (client as Redis).duplicate({ keyPrefix, lazyConnect: true });
  await made.connect();
  return made;
}

const keyCount = 1_500;

/** The store's record of a rule's namespaces (see RedisStore), not a key's state. */
const isNamespaceRecord = (key: string) => key.endsWith('}:namespaces');

describe.skipIf(skip !== undefined).each(targets)('limiter.resetAll() on $name', (target) => {
  const connection = targetConnection(target);
  const extraClients: (Redis | Cluster)[] = [];
  afterAll(async () => {
    await Promise.all(extraClients.map((client) => client.quit()));
  });

  /**
   * Fills `limiter` (a fixed window of 1, a sliding-log role, auto-block) with `keyCount` spent
   * keys, a blocked key and a role key, and `other` (another prefix on the same store, another
   * store prefix on the same client) with one spent key each.
   */
  async function exercise(client: Redis | Cluster, keyPrefix: string): Promise<void> {
    const storePrefix = `${uniqueName('rlra')}:`;
    const store = new RedisStore({ client, prefix: storePrefix });
    const options = {
      limits: [{ limit: 1, windowMs: 3_600_000 }],
      roles: { free: [{ algorithm: 'sliding-log' as const, limit: 1, windowMs: 3_600_000 }] },
      autoBlock: { violations: 2, withinMs: 60_000, blockMs: 600_000 },
      deadlineMs: 10_000,
    };
    const limiter = createRateLimiter({ ...options, store, prefix: 'api' });
    const sibling = createRateLimiter({ ...options, store, prefix: 'login' });
    const elsewhere = createRateLimiter({
      ...options,
      store: new RedisStore({ client, prefix: `${storePrefix}other:` }),
      prefix: 'api',
    });
    const limiters: RateLimiter[] = [limiter, sibling, elsewhere];
    // The spent keys stay refused until resetAll() only within the hour (Redis TIME, this host's
    // clock) their first checks opened.
    await awayFromWindowEdge(3_600_000, 15_000);
    try {
      const keys = Array.from({ length: keyCount }, (_, index) => `user-${index}`);
      await Promise.all(keys.map((key) => limiter.check(key)));
      expect((await limiter.check('user-0')).allowed).toBe(false);
      // A blocked key, answered from the local hot-key cache until resetAll clears it.
      await limiter.check('abuser');
      await limiter.check('abuser');
      const blocked = await limiter.check('abuser');
      expect(blocked.outcome).toBe('blocked');
      expect((await limiter.check('abuser')).source).toBe('local-cache');
      await limiter.check({ key: 'user-0', role: 'free' });
      expect((await limiter.check({ key: 'user-0', role: 'free' })).allowed).toBe(false);
      for (const other of [sibling, elsewhere]) {
        await other.check('user-0');
        expect((await other.check('user-0')).allowed).toBe(false);
      }
      const all = `${keyPrefix}${storePrefix}*`;
      const before = await keysMatching(connection.client, all);
      // The limiter's keys (the hashes and the sliding log's set) and the two others' hashes.
      expect(before.length).toBeGreaterThanOrEqual(keyCount + 1 + 2 + 2);

      await limiter.resetAll();

      const after = (await keysMatching(connection.client, all)).filter((key) => !isNamespaceRecord(key));
      expect(after.sort()).toEqual(
        before
          .filter((key) => !isNamespaceRecord(key) && !key.startsWith(`${keyPrefix}${storePrefix}{api:`))
          .sort(),
      );
      expect(after).toHaveLength(2);
      expect(await limiter.check('user-0')).toMatchObject({ allowed: true, source: 'store' });
      expect((await limiter.check(`user-${keyCount - 1}`)).allowed).toBe(true);
      expect(await limiter.check('abuser')).toMatchObject({ allowed: true, source: 'store' });
      expect((await limiter.check({ key: 'user-0', role: 'free' })).allowed).toBe(true);
      for (const other of [sibling, elsewhere]) expect((await other.check('user-0')).allowed).toBe(false);
    } finally {
      await Promise.all(limiters.map((each) => each.close()));
    }
  }

  it(`clears all ${keyCount} keys of its rules (roles, sliding logs, blocks) and no other limiter’s`, async () => {
    await exercise(connection.client, '');
  });

  it('with an ioredis keyPrefix on the client', async () => {
    const keyPrefix = `${uniqueName('kp')}:`;
    const client = await withKeyPrefix(connection.client, keyPrefix);
    extraClients.push(client);
    await exercise(client, keyPrefix);
  });

  it('clears its keys that are not well-formed Unicode, and not another prefix’s', async () => {
    const storePrefix = `${uniqueName('rlutf')}:`;
    const store = new RedisStore({ client: connection.client, prefix: storePrefix });
    const limits = [{ limit: 1, windowMs: 3_600_000 }];
    const api = createRateLimiter({ store, prefix: 'api', limits, deadlineMs: 10_000 });
    const apiV2 = createRateLimiter({ store, prefix: 'api:v2', limits, deadlineMs: 10_000 });
    await awayFromWindowEdge(3_600_000, 5_000);
    try {
      for (const key of ['\ud800', 'a:\udbff:b', '\ud83d\ude00\udc00']) {
        await api.check(key);
        await apiV2.check(key);
        expect((await api.check(key)).allowed).toBe(false);
        await api.resetAll();
        expect((await api.check(key)).allowed).toBe(true);
        expect((await apiV2.check(key)).allowed).toBe(false);
      }
    } finally {
      await Promise.all([api.close(), apiV2.close()]);
    }
  });

  it('clears the keys its rules wrote under earlier limits (another fingerprint), and no other prefix’s', async () => {
    const client = connection.client;
    const storePrefix = `${uniqueName('rlgen')}:`;
    const store = new RedisStore({ client, prefix: storePrefix });
    // Buckets and logs: no window edge to straddle, a spent key stays refused for the hour.
    const earlier = {
      limits: [{ algorithm: 'token-bucket' as const, limit: 1, windowMs: 3_600_000 }],
      roles: { free: [{ algorithm: 'sliding-log' as const, limit: 1, windowMs: 3_600_000 }] },
      deadlineMs: 10_000,
    };
    const later = {
      limits: [{ algorithm: 'token-bucket' as const, limit: 1, windowMs: 7_200_000 }],
      roles: { free: [{ algorithm: 'sliding-log' as const, limit: 1, windowMs: 7_200_000 }] },
      deadlineMs: 10_000,
    };
    const spend = async (limiter: RateLimiter) => {
      for (const input of ['user', { key: 'user', role: 'free' }]) {
        await limiter.check(input);
        expect((await limiter.check(input)).allowed).toBe(false);
      }
    };
    // Prefixes that start like ours: their keys begin with `{api:default:` or `{api:role-free:` too.
    const others = ['api:default', 'api:role-free', 'ap'].map((prefix) =>
      createRateLimiter({ store, prefix, ...earlier }),
    );
    const opened: RateLimiter[] = [...others];
    try {
      for (const other of others) await spend(other);
      const all = `${storePrefix}*`;
      const othersKeys = (await keysMatching(client, all)).filter((key) => !isNamespaceRecord(key));
      // The token bucket's hash and the sliding log's set, per limiter.
      expect(othersKeys).toHaveLength(3 * 2);
      const first = createRateLimiter({ store, prefix: 'api', ...earlier });
      opened.push(first);
      await spend(first);
      await first.close();
      // The same prefix restarted with longer windows (another fingerprint): a second generation.
      const second = createRateLimiter({ store, prefix: 'api', ...later });
      opened.push(second);
      await spend(second);
      expect((await keysMatching(client, all)).filter((key) => !isNamespaceRecord(key))).toHaveLength(
        3 * 2 + 2 * 2,
      );

      await second.resetAll();

      const after = (await keysMatching(client, all)).filter((key) => !isNamespaceRecord(key));
      expect(after.sort()).toEqual(othersKeys.sort());
      // The records stay (a process still on the earlier limits writes there), and expire.
      for (const rule of ['api:default', 'api:role-free']) {
        const record = `${storePrefix}{${rule}}:namespaces`;
        expect(await client.zcard(record)).toBe(2);
        expect(await client.pttl(record)).toBeGreaterThan(7_200_000);
      }
      expect((await second.check('user')).allowed).toBe(true);
      expect((await second.check({ key: 'user', role: 'free' })).allowed).toBe(true);
      // Back to the earlier limits: their counters went too.
      await second.close();
      const third = createRateLimiter({ store, prefix: 'api', ...earlier });
      opened.push(third);
      expect((await third.check('user')).allowed).toBe(true);
      expect((await third.check({ key: 'user', role: 'free' })).allowed).toBe(true);
      for (const other of others) {
        expect((await other.check('user')).allowed).toBe(false);
        expect((await other.check({ key: 'user', role: 'free' })).allowed).toBe(false);
      }
    } finally {
      await Promise.all(opened.map((limiter) => limiter.close()));
    }
  });

  it('a glob character in the prefix is matched literally', async () => {
    const storePrefix = `${uniqueName('rlglob')}:`;
    const store = new RedisStore({ client: connection.client, prefix: storePrefix });
    const limits = [{ limit: 1, windowMs: 3_600_000 }];
    const star = createRateLimiter({ store, prefix: 'a*', limits, deadlineMs: 10_000 });
    const plain = createRateLimiter({ store, prefix: 'ab', limits, deadlineMs: 10_000 });
    await awayFromWindowEdge(3_600_000, 5_000);
    try {
      await star.check('k');
      await plain.check('k');
      await star.resetAll();
      expect((await star.check('k')).allowed).toBe(true);
      expect((await plain.check('k')).allowed).toBe(false);
    } finally {
      await Promise.all([star.close(), plain.close()]);
    }
  });
});

import { aclRefusedObjects, restrictedAclUsers, startPrivateRedisOrSkip } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRateLimiter } from '../../src/index.js';
import type { LimitPolicy } from '../../src/policy.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';
import { privateRedisConnections } from './redis-fixture.js';

// Redis as managed services run it: an application user confined to its own key prefix and
// channels, and (second user) with the "dangerous" commands off (KEYS, CONFIG, FLUSHALL, INFO…).
// Every feature of a limiter whose store has that prefix must run without a NOPERM: `ACL LOG`
// records each refusal, swallowed or not. A private server: ACL users must not reach other suites.

const { redis, skip } = await startPrivateRedisOrSkip();

const prefix = 'app:rl:';
/** The README's minimal command list (see "Production Redis"). */
const minimalCommands =
  '+evalsha +eval +fcall +function|load +hset +hget +hmget +pexpire +pttl +time +del +zadd +zrangebyscore +zscore +zremrangebyscore +zrange +scan +unlink';
/** The README's "Production Redis" ACL lines (the second adds `-@dangerous`, the third grants only what is used). */
const users = restrictedAclUsers(prefix, minimalCommands, { channels: false });

const algorithms: LimitPolicy['algorithm'][] = [
  'fixed-window',
  'sliding-window',
  'sliding-log',
  'token-bucket',
  'leaky-bucket',
];

describe.skipIf(skip !== undefined)('the limiter on an ACL-restricted Redis user', () => {
  const { admin } = privateRedisConnections(redis);
  const clients: Redis[] = [];
  beforeAll(async () => {
    for (const [name, rules] of Object.entries(users)) await admin.call('ACL', 'SETUSER', name, ...rules);
  });
  afterAll(() => {
    for (const client of clients) client.disconnect();
  });

  async function connectAs(username: string): Promise<Redis> {
    const client = new Redis(redis!.url, {
      ...recommendedRedisOptions,
      username,
      password: 'secret',
      lazyConnect: true,
    });
    clients.push(client);
    await client.connect();
    return client;
  }

  it.each(Object.keys(users))(
    '%s: checks, reset, resetAll, records, auto-block and health need no other key or command',
    async (username) => {
      await admin.flushall(); // the other user's run left its keys under the same prefix
      await admin.call('ACL', 'LOG', 'RESET');
      const client = await connectAs(username);
      for (const algorithm of algorithms) {
        const limiter = createRateLimiter({
          store: new RedisStore({ client, prefix }),
          prefix: `${username}-${algorithm}`,
          limits: [{ algorithm, limit: 2, windowMs: 60_000 }],
          autoBlock: { violations: 2, withinMs: 60_000, blockMs: 60_000 },
          failMode: 'closed',
          localBlockCache: false, // a blocked key's checks reach Redis (its script reads the block)
          deadlineMs: 5_000,
        });
        try {
          const sources = [];
          const allowed = [];
          for (let index = 0; index < 5; index += 1) {
            const result = await limiter.check('user');
            allowed.push(result.allowed);
            sources.push(result.source);
          }
          expect(allowed, algorithm).toEqual([true, true, false, false, false]);
          expect(sources).not.toContain('fail-mode');
          expect(limiter.health().status).toBe('up');
          expect(await limiter.reset('user')).toBe(true);
          expect((await limiter.check('user')).allowed).toBe(true);
          await limiter.block('other', 60_000);
          expect((await limiter.peek('other')).allowed).toBe(false);
          await limiter.unblock('other');
          await limiter.check('spent');
          await limiter.check('spent');
          expect((await limiter.check('spent')).allowed).toBe(false);
          await limiter.resetAll();
          expect((await limiter.check('spent')).allowed).toBe(true);
          expect(limiter.health().status).toBe('up');
        } finally {
          await limiter.close();
        }
      }
      // The store's keys are all under its prefix (a key elsewhere would have been refused). The
      // only refusal allowed is ioredis's ready check (INFO, in @dangerous), which it skips.
      const refused = aclRefusedObjects(await admin.call('ACL', 'LOG'));
      expect(refused.filter((command) => command !== 'info')).toEqual([]);
      const keys = await admin.keys('*');
      expect(keys.length).toBeGreaterThan(0);
      expect(keys.filter((key) => !key.startsWith(prefix))).toEqual([]);
    },
  );
});

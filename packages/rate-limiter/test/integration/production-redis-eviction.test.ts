import { recordingLogger, startPrivateRedisOrSkip } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { createRateLimiter } from '../../src/index.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';

// A production Redis that evicts (`allkeys-lru`, or the `volatile-*` policies: every key of the
// limiter has an expiry): an evicted counter lifts its key's limit, which no client can tell from
// a key never seen. So the store says so: it reads the server's memory policy once connected and
// warns when Redis may evict. A private server: maxmemory and the junk that fills it must not
// reach other suites.

const { redis: server, skip } = await startPrivateRedisOrSkip(['--maxmemory-policy', 'allkeys-lru']);

describe.skipIf(skip !== undefined)('the limiter on a Redis that evicts its keys', () => {
  const url = server?.url ?? 'redis://127.0.0.1:1';
  const admin = new Redis(url, { lazyConnect: true });
  const clients: Redis[] = [];
  afterAll(async () => {
    for (const client of clients) client.disconnect();
    admin.disconnect();
    await server?.stop();
  });
  async function connect(): Promise<Redis> {
    const client = new Redis(url, { ...recommendedRedisOptions, lazyConnect: true });
    clients.push(client);
    await client.connect();
    return client;
  }
  /** The warnings a store logs within a short while of its first check. */
  async function warningsOf(prefix: string): Promise<string[]> {
    const logger = recordingLogger();
    const limiter = createRateLimiter({
      store: new RedisStore({ client: await connect(), prefix, logger }),
      limits: [{ limit: 1, windowMs: 3_600_000 }],
      deadlineMs: 2_000,
    });
    await limiter.check('k');
    await new Promise((resolve) => setTimeout(resolve, 200));
    await limiter.close();
    return logger.messages('warn').filter((warning) => warning.includes('maxmemory'));
  }
  const usedMemory = async () => Number(/^used_memory:(\d+)/m.exec(await admin.info('memory'))![1]);

  it('an evicted counter lifts its limit: the store warns of a policy that evicts', async () => {
    const limiter = createRateLimiter({
      store: new RedisStore({ client: await connect(), prefix: 'evict:' }),
      limits: [{ limit: 1, windowMs: 3_600_000 }],
      deadlineMs: 2_000,
      localBlockCache: false,
    });
    try {
      expect((await limiter.check('k')).allowed).toBe(true);
      expect((await limiter.check('k')).allowed).toBe(false);
      await admin.config('SET', 'maxmemory', String((await usedMemory()) + 1_000_000));
      try {
        const junk = 'j'.repeat(10_000);
        // Until the key's counter (and the rule's namespace record) are evicted.
        for (let index = 0; index < 5_000 && (await admin.keys('evict:{*')).length > 0; index += 1)
          await admin.set(`junk:${index}`, junk);
      } finally {
        await admin.config('SET', 'maxmemory', '0');
      }
      expect(await admin.keys('evict:{*')).toEqual([]);
      // The key's hour is not over, yet it is admitted again.
      expect((await limiter.check('k')).allowed).toBe(true);
    } finally {
      await limiter.close();
    }
    await admin.config('SET', 'maxmemory', '100mb');
    try {
      const warnings = await warningsOf('warned:');
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain('allkeys-lru');
    } finally {
      await admin.config('SET', 'maxmemory', '0');
    }
  });

  it('no warning when Redis does not evict (noeviction, or no maxmemory)', async () => {
    expect(await warningsOf('unlimited:')).toEqual([]); // maxmemory 0: nothing is evicted
    await admin.config('SET', 'maxmemory', '100mb', 'maxmemory-policy', 'noeviction');
    try {
      expect(await warningsOf('noeviction:')).toEqual([]);
    } finally {
      await admin.config('SET', 'maxmemory', '0', 'maxmemory-policy', 'allkeys-lru');
    }
  });
});

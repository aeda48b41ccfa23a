import { isReachable, serviceUrl, startPrivateRedis, uniqueName } from '@noa/testkit';
import { describe, expect, it } from 'vitest';
import { BackendUnavailableError, createRedisPool, PoolClosedError } from '../../src/index.js';

const url = serviceUrl('redis');
const reachable = await isReachable('redis');
if (!reachable) console.log(`skipped: no Redis at ${url}`);

describe.skipIf(!reachable)('RedisPool', () => {
  it('gives blocking commands their own connections, so BLPOPs do not stall each other', async () => {
    const pool = createRedisPool({ redis: url, max: 3 });
    const key = uniqueName('cp_queue');
    try {
      const waiting = [
        pool.use((client) => client.blpop(`${key}:a`, 5)),
        pool.use((client) => client.blpop(`${key}:b`, 5)),
      ];
      for (let attempt = 0; attempt < 200 && pool.health().stats.active < 2; attempt += 1) {
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      expect(pool.health().stats.active).toBe(2);
      await pool.use(async (client) => {
        await client.rpush(`${key}:b`, 'second');
        await client.rpush(`${key}:a`, 'first');
      });
      expect(await Promise.all(waiting)).toEqual([
        [`${key}:a`, 'first'],
        [`${key}:b`, 'second'],
      ]);
    } finally {
      await pool.close();
    }
  });

  it('isolates WATCH/MULTI per connection', async () => {
    const pool = createRedisPool({ redis: url, max: 2 });
    const key = uniqueName('cp_counter');
    try {
      const result = await pool.use(async (client) => {
        await client.watch(key);
        // A write from another connection between WATCH and EXEC aborts the transaction.
        await pool.use((other) => other.set(key, 'changed'));
        return client.multi().set(key, 'mine').exec();
      });
      expect(result).toBeNull();
      expect(await pool.use((client) => client.get(key))).toBe('changed');
      await pool.use((client) => client.del(key));
    } finally {
      await pool.close();
    }
  });

  it('close() with a blocking command in flight: its caller gets PoolClosedError, a client released late is ignored', async () => {
    const pool = createRedisPool({ redis: url, max: 2, closeTimeoutMs: 100 });
    const key = uniqueName('cp_close');
    const blocked = pool.use((client) => client.blpop(key, 10)).catch((error: unknown) => error);
    const raw = await pool.acquire();
    for (let attempt = 0; attempt < 200 && pool.health().stats.active < 2; attempt += 1) {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    const report = await pool.close();
    expect(report.unreleased).toHaveLength(2);
    expect(await blocked).toBeInstanceOf(PoolClosedError);
    expect(() => pool.release(raw)).not.toThrow();
  });

  it('fails fast while a private Redis is down and recovers after it restarts', async () => {
    const server = await startPrivateRedis();
    const pool = createRedisPool({ redis: server.url, max: 2, initialBackoffMs: 50, maxBackoffMs: 200 });
    try {
      expect(await pool.use((client) => client.ping())).toBe('PONG');
      await server.kill();
      const started = Date.now();
      await expect(pool.use((client) => client.ping())).rejects.toBeInstanceOf(BackendUnavailableError);
      await expect(pool.use((client) => client.ping())).rejects.toBeInstanceOf(BackendUnavailableError);
      expect(Date.now() - started).toBeLessThan(5_000 + 1_000);
      await server.restart();
      let answer: string | undefined;
      for (let attempt = 0; attempt < 100 && answer === undefined; attempt += 1) {
        answer = await pool
          .use((client) => client.ping())
          .catch(async () => {
            await new Promise((resolve) => setTimeout(resolve, 50));
            return undefined;
          });
      }
      expect(answer).toBe('PONG');
      expect(pool.health().healthy).toBe(true);
    } finally {
      await pool.close();
      await server.stop();
    }
  });
});

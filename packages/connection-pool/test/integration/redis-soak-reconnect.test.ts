import { startPrivateRedisOrSkip } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { createRedisPool } from '../../src/redis.js';
import { listeners, live, soak, timers } from './helpers/soak.js';
import { sleep, waitFor } from './helpers/wait.js';

/** soak-reconnect.test.ts for the Redis pool, on a private Redis (CLIENT KILL, SIGSTOP). */

const { redis, skip: redisSkip } = await startPrivateRedisOrSkip();

describe.skipIf(redisSkip !== undefined)('RedisPool over many connection kills (soak)', () => {
  afterAll(async () => {
    await redis?.stop();
  });

  it('keeps listeners, live clients and promises flat; close() leaves no timer', async () => {
    const admin = new Redis(redis!.url);
    const before = timers();
    const pool = createRedisPool({
      redis: redis!.url,
      max: 4,
      queryTimeoutMs: 5_000,
      healthCheckIntervalMs: 50,
    });
    try {
      const work = (round: number) =>
        Array.from({ length: 200 }, (_, index) =>
          pool.use((client) => client.set(`soak:${round}:${index % 20}`, String(index))),
        );
      const kill = () => admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
      const healthy = () => pool.use((client) => client.ping());
      await soak(1, work, kill, healthy);
      await sleep(20);
      const conn = await pool.acquire();
      const baseListeners = listeners(conn);
      pool.release(conn);
      const baseClients = live(Redis);
      const basePromises = live(Promise);
      await soak(8, work, kill, healthy);
      const again = await pool.acquire();
      expect(listeners(again)).toEqual(baseListeners);
      pool.release(again);
      // A killed connection's client lives on for ioredis' disconnectTimeout (2 s: its socket's
      // forced close), then goes.
      await waitFor(() => live(Redis) <= baseClients + 2, 5_000, `live clients back to ${baseClients}`);
      expect(live(Promise) - basePromises).toBeLessThan(300);
    } finally {
      await pool.close();
      admin.disconnect();
    }
    await waitFor(() => timers() <= before, 5_000, `timers back to ${before}`);
  }, 30_000);

  it('close() while commands wait on a frozen Redis and callers queue for a connection: every promise settles, no timer stays', async () => {
    const before = timers();
    const pool = createRedisPool({ redis: redis!.url, max: 2, queryTimeoutMs: 60_000, closeTimeoutMs: 100 });
    await pool.use((client) => client.ping());
    redis!.freeze();
    try {
      const calls = Array.from({ length: 12 }, (_, index) =>
        pool.use((client) => client.get(`frozen:${index}`), { timeoutMs: 60_000 }),
      );
      await waitFor(() => pool.health().stats.waiting > 0, 5_000, 'callers queued');
      const settled = await Promise.race([
        Promise.allSettled([pool.close(), ...calls]),
        sleep(10_000).then(() => 'hung' as const),
      ]);
      expect(settled).not.toBe('hung');
    } finally {
      redis!.resume();
    }
    // The clients of the frozen connections go after ioredis' disconnectTimeout (2 s).
    await waitFor(() => timers() <= before, 5_000, `timers back to ${before}`);
  }, 20_000);
});

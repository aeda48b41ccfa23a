import { delay } from '@noa/core';
import { startPrivateRedisOrSkip } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';

// Redis restarted (without persistence) while an instance holds a key's lease and another
// waits on it: the lease is gone with the data, so the waiter runs the factory too (its polls
// fail while Redis is down, or it takes the lease the restart freed); each instance runs it once
// at most, no call fails, and the key is cached for every instance afterwards.

const started = await startPrivateRedisOrSkip();

describe.skipIf(started.skip !== undefined)('a Redis restart mid-lease', () => {
  const server = started.redis!;
  const clients: Redis[] = [];
  const caches: Cache[] = [];
  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
    for (const client of clients) client.disconnect();
    await server.stop();
  });
  async function open(): Promise<Cache> {
    const client = new Redis(server.url, { maxRetriesPerRequest: 1 });
    client.on('error', () => {});
    clients.push(client);
    const cache = new Cache({
      redis: client,
      prefix: 'restart:',
      operationTimeoutMs: 500,
      breaker: { consecutiveFailures: 3, halfOpenAfterMs: 200 },
      lock: { leaseMs: 20_000, timeoutMs: 20_000, pollMs: 50 },
    });
    caches.push(cache);
    await cache.ready();
    return cache;
  }

  it('the waiter runs the factory once, the holder finishes, and the key is cached afterwards', async () => {
    const [holder, waiter] = [await open(), await open()];
    const runs = { holder: 0, waiter: 0 };
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let running!: () => void;
    const holding = new Promise<void>((resolve) => {
      running = resolve;
    });
    const first = holder.getOrSet('k', async () => {
      runs.holder += 1;
      running();
      await gate;
      return { by: 'holder' };
    });
    await holding;
    const second = waiter.getOrSet('k', async () => {
      runs.waiter += 1;
      await gate;
      return { by: 'waiter' };
    });
    await delay(100);
    expect(runs.waiter).toBe(0);
    await server.kill();
    await server.restart();
    // Both clients back, then the factories end.
    const admin = new Redis(server.url);
    clients.push(admin);
    await delay(300);
    release();
    const [a, b] = await Promise.all([first, second]);
    expect(a).toEqual({ by: 'holder' });
    expect(['holder', 'waiter']).toContain((b as { by: string }).by);
    expect(runs.holder).toBe(1);
    expect(runs.waiter).toBeLessThanOrEqual(1);
    // Recovered: a third instance gets the key computed at most once more, then cached for all.
    const third = await open();
    let later = 0;
    const factory = () => {
      later += 1;
      return { by: 'third' };
    };
    const deadline = Date.now() + 10_000;
    let value: unknown;
    do {
      value = await third.getOrSet('k', factory);
      if ((await admin.exists('restart:v:k')) === 1) break;
      await delay(100);
    } while (Date.now() < deadline);
    expect(await admin.exists('restart:v:k')).toBe(1);
    expect(value).toBeDefined();
    expect(later).toBeLessThanOrEqual(1);
  }, 30_000);
});

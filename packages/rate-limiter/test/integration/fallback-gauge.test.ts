import { serviceUrl, sparePort } from '@noa/testkit';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { createRateLimiter, type RateLimiter } from '../../src/index.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';

const clients: Redis[] = [];
const limiters: RateLimiter[] = [];

function limiterAt(url: string, registry: Registry): RateLimiter {
  const client = new Redis(url, { ...recommendedRedisOptions, retryStrategy: () => 200 });
  client.on('error', () => {});
  clients.push(client);
  const limiter = createRateLimiter({
    store: new RedisStore({ client }),
    limits: [{ limit: 100, windowMs: 60_000 }],
    failMode: 'open',
    deadlineMs: 50,
    breaker: { halfOpenAfterMs: 60_000, consecutiveFailures: 1 },
    registry,
  });
  limiters.push(limiter);
  return limiter;
}

/** The value of `noa_rate_limiter_fallback_active` for the limiters of the default name. */
async function fallbackActive(registry: Registry): Promise<number> {
  const name = 'noa_rate_limiter_fallback_active{limiter="limiter"}';
  const line = (await registry.metrics()).split('\n').find((text) => text.startsWith(`${name} `));
  return Number(line?.slice(name.length + 1));
}

afterAll(async () => {
  for (const limiter of limiters) await limiter.close();
  for (const client of clients) client.disconnect();
});

describe('fallback_active with limiters sharing a registry', () => {
  it('counts the limiters bypassing their store: a healthy or new one does not hide a failing one', async () => {
    const registry = new Registry();
    // Nothing listens on a spare port: every call fails, and the breaker opens at the first.
    const failing = limiterAt(`redis://127.0.0.1:${await sparePort()}`, registry);
    const healthy = limiterAt(serviceUrl('redis'), registry);
    expect(await fallbackActive(registry)).toBe(0);

    expect((await failing.check('a')).source).toBe('fail-mode');
    expect(failing.fallbackActive).toBe(true);
    expect(await fallbackActive(registry)).toBe(1);

    // A limiter created later, and checks on a healthy one, leave the failing one counted.
    const later = limiterAt(serviceUrl('redis'), registry);
    expect((await healthy.check('b')).source).toBe('store');
    expect((await later.check('c')).source).toBe('store');
    expect(await fallbackActive(registry)).toBe(1);

    // A second failing limiter adds up; closing one takes its share out.
    const failingToo = limiterAt(`redis://127.0.0.1:${await sparePort()}`, registry);
    await failingToo.check('d');
    expect(await fallbackActive(registry)).toBe(2);
    await failing.close();
    expect(await fallbackActive(registry)).toBe(1);
    await failingToo.close();
    await failingToo.close();
    expect(await fallbackActive(registry)).toBe(0);
  });
});

import { uniqueName } from '@noa/testkit';
import { describe, expect, it } from 'vitest';
import { createRateLimiter } from '../../src/index.js';
import { RedisStore } from '../../src/redis.js';
import { defaultNamespace } from '../rule-namespace.js';
import { targetConnection } from './redis-fixture.js';
import { targets } from './redis-targets.js';

// A key whose Redis value is not the store's (here a string where the state hash goes: another
// program's key under the same name, a hand-written value) makes every script call on it fail with
// WRONGTYPE. That is Redis answering about that key, not Redis being down: the key's own checks
// get the fail mode, but the breaker must not count them, or one client hammering its broken key
// (ten calls in a row by default) opens the breaker and sends every other key to the fail mode
// (with failMode 'closed': every client refused) for as long as it keeps hammering.

const limits = [{ limit: 100, windowMs: 60_000 }];

describe.each(targets)('$name: a key holding another type of value', (target) => {
  const connection = targetConnection(target);

  it('fails its own checks by the fail mode, and does not open the breaker for the other keys', async () => {
    const prefix = `${uniqueName('wrongtype')}:`;
    const namespace = defaultNamespace(limits);
    const { client } = connection;
    await client.set(`${prefix}{${namespace}broken}`, 'not a hash', 'PX', 600_000);
    const warnings: string[] = [];
    const logger = {
      debug() {},
      info() {},
      warn(message: string) {
        warnings.push(message);
      },
      error() {},
    };
    const limiter = createRateLimiter({
      store: new RedisStore({ client, prefix }),
      limits,
      failMode: 'closed',
      localBlockCache: false,
      deadlineMs: 2_000,
      logger,
    });
    try {
      expect((await limiter.check('healthy')).source).toBe('store');
      // Twenty calls in a row on the broken key, each its own store call.
      for (let call = 0; call < 20; call += 1) {
        const result = await limiter.check('broken');
        expect(result.source).toBe('fail-mode');
        expect(result.allowed).toBe(false);
      }
      expect(limiter.health().status).toBe('up');
      const healthy = await limiter.check('healthy');
      expect(healthy.source).toBe('store');
      expect(healthy.allowed).toBe(true);
      expect(warnings.some((message) => message.includes('breaker open'))).toBe(false);
      // Adjustments of the broken key fail with Redis's answer; they do not open the breaker either.
      for (let call = 0; call < 12; call += 1)
        await expect(limiter.refund('broken', 1)).rejects.toThrow(/WRONGTYPE/);
      expect((await limiter.check('healthy')).source).toBe('store');
    } finally {
      await limiter.close();
      const stored = await client.keys(`${prefix}*`);
      for (const key of stored) await client.del(key);
    }
  });
});

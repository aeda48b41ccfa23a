import { startPrivateRedisOrSkip } from '@noa/testkit';
import { describe, expect, it } from 'vitest';
import type { LimitPolicy } from '../../src/policy.js';
import { RedisStore } from '../../src/stores/redis-store.js';
import { privateRedisConnections } from './redis-fixture.js';

// A server out of memory (maxmemory reached, noeviction) refuses a Redis function that may write
// before it runs, while a script runs until its first write: a check that refuses (and so
// writes nothing) is still answered. Checks run as a function must keep that. A private
// server: maxmemory must not reach other suites.

const { redis, skip } = await startPrivateRedisOrSkip(['--maxmemory-policy', 'noeviction']);

const limits: LimitPolicy[] = [{ name: 'f', algorithm: 'fixed-window', limit: 1, windowMs: 2 ** 40 }];

describe.skipIf(skip !== undefined)('RedisStore on a server out of memory', () => {
  const { admin, client } = privateRedisConnections(redis);

  const allowed = async (store: RedisStore, key: string) =>
    store.consume(key, limits, [1], undefined).then(
      ([outcome]) => outcome!.decisions[0]!.allowed,
      (error: Error) => error.message,
    );

  it('a key over its limit is still refused (as with scripts), a new key fails, and functions stay on', async () => {
    const asFunction = new RedisStore({ client, prefix: 'function:' });
    const asScript = new RedisStore({ client, functions: false, prefix: 'script:' });
    for (const store of [asFunction, asScript]) expect(await allowed(store, 'spent')).toBe(true);
    await admin.config('SET', 'maxmemory', '1');
    try {
      for (const store of [asFunction, asScript]) {
        expect(await allowed(store, 'spent')).toBe(false);
        expect(await allowed(store, 'new')).toMatch(/OOM/);
      }
    } finally {
      await admin.config('SET', 'maxmemory', '0');
    }
    expect(asFunction.usesFunctions).toBe(true);
    expect(await allowed(asFunction, 'new')).toBe(true);
  });
});

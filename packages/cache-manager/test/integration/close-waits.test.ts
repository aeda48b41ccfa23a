import { delay } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';
import { Redis, redisUp, redisUrl, sharedRedisCaches } from './helpers.js';

/**
 * The README's Closing section: `close()` waits for background work (a factory run whose
 * callers left at their soft timeout, a `writeMode: 'background'` write) so that its value
 * reaches L2, at most 5 s, then resolves even if that work never settles.
 */
describe.skipIf(!redisUp)('close() and background work', () => {
  const { prefix, open } = sharedRedisCaches('cm_close_waits');

  /** A cache on its own client, closed by the test itself. */
  function own(): { cache: Cache; client: Redis } {
    const client = new Redis(redisUrl);
    return { cache: new Cache({ redis: client, prefix }), client };
  }

  it('waits for a factory run its caller left at the soft timeout: its value is in L2 once close() resolves', async () => {
    const { cache, client } = own();
    try {
      await cache.ready();
      await cache.set('left', 'old', { ttlMs: 1, graceMs: 60_000 });
      await delay(5);
      const served = await cache.getOrSet(
        'left',
        async () => {
          await delay(200);
          return 'new';
        },
        { softTimeoutMs: 10, ttlMs: 60_000 },
      );
      expect(served).toBe('old');
      await cache.close();
    } finally {
      client.disconnect();
    }
    const reader = await open();
    expect(await reader.get('left')).toBe('new');
  });

  it("waits for a writeMode 'background' write: in L2 once close() resolves", async () => {
    const client = new Redis(redisUrl);
    const cache = new Cache({ redis: client, prefix, writeMode: 'background' });
    try {
      await cache.ready();
      await cache.setMany(Array.from({ length: 2_000 }, (_, index) => ({ key: `bg${index}`, value: index })));
      await cache.close();
    } finally {
      client.disconnect();
    }
    const reader = await open();
    expect(await reader.get('bg1999')).toBe(1999);
  });

  it('resolves while a factory run its caller left never settles (the wait is bounded)', {
    timeout: 20_000,
  }, async () => {
    const { cache, client } = own();
    try {
      await cache.ready();
      await cache.set('hung', 'old', { ttlMs: 1, graceMs: 60_000 });
      await delay(5);
      expect(await cache.getOrSet('hung', () => new Promise<string>(() => {}), { softTimeoutMs: 10 })).toBe(
        'old',
      );
      await expect(cache.close()).resolves.toBeUndefined();
      await expect(cache.get('hung')).rejects.toMatchObject({ code: 'NOA_CLOSED' });
    } finally {
      client.disconnect();
    }
  });
});

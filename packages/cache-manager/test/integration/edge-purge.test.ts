import { delay } from '@noa/core';
import { startPrivateRedisOrSkip } from '@noa/testkit';
import { describe, expect, it } from 'vitest';
import { BackendUnavailableError, type EdgePurger } from '../../src/index.js';
import { privateRedisCaches, redisUp, sharedRedisCaches } from './helpers.js';

/** A purger that records the tags of each call. */
function recordingPurger(): EdgePurger & { calls: string[][] } {
  const calls: string[][] = [];
  return {
    calls,
    purgeTags: async (tags) => {
      calls.push([...tags]);
    },
  };
}

describe.skipIf(!redisUp)('edge purge with Redis', () => {
  const { open } = sharedRedisCaches('cm_edge');

  it('is called once, by the instance that deleted the tag, with the tags as named', async () => {
    const purgerA = recordingPurger();
    const purgerB = recordingPurger();
    const a = await open({ edge: { purger: purgerA } });
    const b = await open({ edge: { purger: purgerB } });
    await a.namespace('shop').set('p1', 'v1', { tags: ['products'] });
    expect(await b.namespace('shop').get('p1')).toBe('v1');
    const heard = new Promise<void>((resolve) =>
      b.onInvalidation((message) => message.t === 'tag' && resolve()),
    );
    expect(await a.namespace('shop').deleteByTag(['products', 'products'])).toBe(1);
    await heard;
    expect(b.namespace('shop').getLocal('p1')).toBeUndefined();
    expect(await b.namespace('shop').get('p1')).toBeUndefined();
    // The CDN knows the tag by its name, not as stored in the namespace (`:shop::products`).
    expect(purgerA.calls).toEqual([['products']]);
    // The bus message purges nothing: one purge per deleteByTag, not one per instance.
    expect(purgerB.calls).toEqual([]);
  });
});

const started = await startPrivateRedisOrSkip();

describe.skipIf(started.skip !== undefined)('edge purge when Redis fails', () => {
  const redis = privateRedisCaches(started, { prefix: 'edge:', operationTimeoutMs: 150 });

  it("with onBackendError 'throw', rejects before the purge (the CDN must not refetch the old value through L2); the retry purges", async () => {
    const purger = recordingPurger();
    const cache = await redis.open({ onBackendError: 'throw', edge: { purger } });
    await cache.set('p1', 'v1', { tags: ['products'] });
    redis.server.freeze();
    let error: unknown;
    try {
      await cache.deleteByTag('products');
    } catch (caught) {
      error = caught;
    } finally {
      redis.server.resume();
    }
    expect(error).toBeInstanceOf(BackendUnavailableError);
    expect(purger.calls).toEqual([]);
    // Redis answers again (its breaker let through): the retry the error calls for does both.
    let removed: number | undefined;
    for (let attempt = 0; attempt < 100 && removed === undefined; attempt += 1) {
      removed = await cache.deleteByTag('products').catch(() => delay(50).then(() => undefined));
    }
    expect(removed).toBeDefined();
    expect(await redis.admin.exists('edge:v:p1')).toBe(0);
    expect(purger.calls).toEqual([['products']]);
  });
});

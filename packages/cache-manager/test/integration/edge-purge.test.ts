import { delay } from '@noa/core';
import { recordingLogger, startPrivateRedisOrSkip } from '@noa/testkit';
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

  it("with onBackendError 'degrade', a deleteByTag whose L2 part failed resolves without the purge, as a lost delete changes L1 only; the retry purges", async () => {
    const purger = recordingPurger();
    const logger = recordingLogger();
    const cache = await redis.open({ edge: { purger }, logger });
    await cache.set('p2', 'v2', { tags: ['degraded-products'] });
    redis.server.freeze();
    let removed: number;
    try {
      removed = await cache.deleteByTag('degraded-products');
    } finally {
      redis.server.resume();
    }
    // This instance's L1 copy is gone (the only tier the change reached)...
    expect(removed).toBe(1);
    expect(cache.getLocal('p2')).toBeUndefined();
    // ...L2 still holds the value, and every instance rereads it once the lost message is sent:
    // a purged CDN would fetch that old value again. No purge, and a warning says so.
    expect(await redis.admin.exists('edge:v:p2')).toBe(1);
    expect(purger.calls).toEqual([]);
    expect(logger.entriesAt('warn').some((entry) => /edge purge skipped/.test(entry.message))).toBe(true);
    let again: number | undefined;
    for (let attempt = 0; attempt < 100 && purger.calls.length === 0; attempt += 1) {
      again = await cache.deleteByTag('degraded-products');
      if (purger.calls.length === 0) await delay(50);
    }
    expect(again).toBe(1);
    expect(await redis.admin.exists('edge:v:p2')).toBe(0);
    expect(purger.calls).toEqual([['degraded-products']]);
  });
});

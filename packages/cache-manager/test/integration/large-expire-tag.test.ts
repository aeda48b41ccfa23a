import { startPrivateRedisOrSkip } from '@noa/testkit';
import { describe, expect, it } from 'vitest';
import { counting, privateRedisCaches } from './helpers.js';

const started = await startPrivateRedisOrSkip();

/**
 * `expireByTag` rewrites every value of the tag (read, re-encode, compare-and-set). Sent all at
 * once for a large tag, the calls queue behind each other past their own deadlines.
 */
describe.skipIf(started.skip !== undefined)('expireByTag of a large tag', () => {
  const fixture = privateRedisCaches(started, { prefix: 'exp:', graceMs: 600_000 });
  const { open } = fixture;

  it('marks 50,000 keys stale without a call past its deadline', async () => {
    const keys = Array.from({ length: 50_000 }, (_, index) => `k${index}`);
    const filler = await open({ operationTimeoutMs: 10_000 });
    for (let start = 0; start < keys.length; start += 5_000) {
      await filler.setMany(
        keys.slice(start, start + 5_000).map((key) => ({ key, value: key, tags: ['big'] })),
      );
    }
    const expirer = await open();
    expect(await expirer.expireByTag('big')).toBe(keys.length);
    expect(expirer.stats().l2Errors).toBe(0);
    expect(expirer.stats().l2).toBe('closed');
    const reader = await open();
    expect((await reader.getMany(keys)).filter((value) => value !== undefined)).toEqual([]);
  }, 60_000);

  it('sends one compare-and-set script per chunk of keys, not one per key (expireByTag, expireMany, deleteByTag)', async () => {
    const keys = Array.from({ length: 2_000 }, (_, index) => `chunked${index}`);
    const filler = await open({ operationTimeoutMs: 10_000 });
    await filler.setMany(keys.map((key) => ({ key, value: key, tags: ['chunked'] })));
    const { client, calls } = counting(fixture.client(), ['evalsha', 'eval', 'mgetBuffer', 'getBuffer']);
    const cache = await open({ redis: client, operationTimeoutMs: 10_000 });
    const scripts = () => (calls.get('evalsha') ?? 0) + (calls.get('eval') ?? 0);
    const reads = () => (calls.get('mgetBuffer') ?? 0) + (calls.get('getBuffer') ?? 0);
    // 2,000 keys in batches of 256: 8 reads and 8 scripts (a few more if a page splits a batch).
    expect(await cache.expireByTag('chunked')).toBe(keys.length);
    expect(scripts()).toBeLessThanOrEqual(16);
    expect(reads()).toBeLessThanOrEqual(16);
    calls.clear();
    await cache.expireMany(keys.slice(0, 1_000));
    expect(scripts()).toBeLessThanOrEqual(4);
    calls.clear();
    // Two reads (before and after the SREM) and one script per 250 keys of each page.
    expect(await cache.deleteByTag('chunked')).toBe(keys.length);
    expect(scripts()).toBeLessThanOrEqual(16);
    expect(await fixture.admin.exists(`exp:v:${keys[0]}`, `exp:v:${keys.at(-1)}`)).toBe(0);
  }, 60_000);
});

import { startPrivateRedisOrSkip } from '@noa/testkit';
import { describe, expect, it } from 'vitest';
import { privateRedisCaches } from './helpers.js';

const started = await startPrivateRedisOrSkip();

/**
 * Batch calls with tens of thousands of keys, under the default 500 ms `operationTimeoutMs`:
 * every Redis call must get its answer within its own deadline, not queue behind the rest of
 * the batch past it (failures that open the breaker while the commands still land).
 */
describe.skipIf(started.skip !== undefined)('large batches', () => {
  const fixture = privateRedisCaches(started, { prefix: 'batch:', l1: { maxEntries: 100_000 } });
  const { open } = fixture;

  it('getOrSetMany of 20,000 cold keys caches them all and leaves no lease behind', async () => {
    const cache = await open();
    const keys = Array.from({ length: 20_000 }, (_, index) => `k${index}`);
    let factoryCalls = 0;
    const values = await cache.getOrSetMany(keys, async (missing) => {
      factoryCalls += 1;
      return missing.map((key) => key.toUpperCase());
    });
    expect(factoryCalls).toBe(1);
    expect(values).toEqual(keys.map((key) => key.toUpperCase()));
    expect(cache.stats().l2Errors).toBe(0);
    expect(cache.stats().l2).toBe('closed');
    // The leases were all released: another instance would otherwise wait on each for `leaseMs`.
    expect(await fixture.admin.keys('batch:__lease:*')).toEqual([]);
    const other = await open();
    expect(await other.getMany(keys)).toEqual(values);
  }, 60_000);

  it('setMany of 100,000 tagged entries reaches L2 without a call past its deadline', async () => {
    const cache = await open();
    const keys = Array.from({ length: 100_000 }, (_, index) => `s${index}`);
    await cache.setMany(keys.map((key) => ({ key, value: { key, pad: 'x'.repeat(100) }, tags: ['many'] })));
    expect(cache.stats().l2Errors).toBe(0);
    expect(cache.stats().l2).toBe('closed');
    const other = await open();
    expect((await other.getMany(keys)).filter((value) => value === undefined).length).toBe(0);
  }, 60_000);
});

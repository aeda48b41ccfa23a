import { startPrivateRedisOrSkip } from '@noa/testkit';
import { describe, expect, it } from 'vitest';
import { privateRedisCaches } from './helpers.js';

const started = await startPrivateRedisOrSkip();

/**
 * `expireByTag` rewrites every value of the tag (read, re-encode, compare-and-set). Sent all at
 * once for a large tag, the calls queue behind each other past their own deadlines.
 */
describe.skipIf(started.skip !== undefined)('expireByTag of a large tag', () => {
  const { open } = privateRedisCaches(started, { prefix: 'exp:', graceMs: 600_000 });

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
});

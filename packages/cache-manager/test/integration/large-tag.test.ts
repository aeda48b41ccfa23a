import { delay } from '@noa/core';
import { startPrivateRedisOrSkip } from '@noa/testkit';
import { describe, expect, it } from 'vitest';
import { privateRedisCaches } from './helpers.js';

const started = await startPrivateRedisOrSkip();

/**
 * A tag with more keys than one `operationTimeoutMs` can delete: as for a large clear, the tag
 * delete must not be announced (nor counted as failed) before Redis has deleted its keys.
 */
describe.skipIf(started.skip !== undefined)('deleteByTag of a large tag', () => {
  const fixture = privateRedisCaches(started, { prefix: 'tag:', l1: { maxEntries: 200_000 } });
  const { open } = fixture;

  it('deletes 100,000 keys of one tag page by page, and other instances keep none of them', async () => {
    const keys = Array.from({ length: 100_000 }, (_, index) => `k${index}`);
    const filler = await open({ operationTimeoutMs: 10_000 });
    for (let start = 0; start < keys.length; start += 5_000) {
      await filler.setMany(
        keys.slice(start, start + 5_000).map((key) => ({ key, value: key, tags: ['big'] })),
      );
    }
    const deleter = await open({ operationTimeoutMs: 100 });
    const reader = await open({ operationTimeoutMs: 10_000 });
    let announced = false;
    reader.onInvalidation((message) => {
      if (message.t === 'tag') announced = true;
    });
    const done = deleter.deleteByTag('big');
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && !announced) await delay(1);
    expect(announced).toBe(true);
    await reader.getMany(keys);
    expect(await done).toBe(keys.length);
    while (Date.now() < deadline && (await fixture.admin.dbsize()) > 10) await delay(50);
    expect(keys.filter((key) => reader.getLocal(key) !== undefined).length).toBe(0);
    expect(deleter.stats().l2Errors).toBe(0);
  }, 60_000);
});

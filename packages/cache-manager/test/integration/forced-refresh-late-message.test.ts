import { generousDeadlineMs, startPrivateRedisOrSkip } from '@noa/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { heard, privateRedisCaches } from './helpers.js';
import { ReplyHoldingProxy } from './reply-holding-proxy.js';

const started = await startPrivateRedisOrSkip();

/**
 * A `forceFresh` run on an instance that hears the bus message of the value it replaces only
 * while it runs (a late message: under load, or across a Cluster's bus). The message announces
 * the write the run read before it started, not a change made since: the run's value is still
 * the key's new value, in this instance's L1, in L2 and for every other instance.
 */
describe.skipIf(started.skip !== undefined)('a forced run that hears of the value it replaces late', () => {
  const caches = privateRedisCaches(started, {
    prefix: 'forced-late:',
    ttlMs: 60_000,
    operationTimeoutMs: generousDeadlineMs,
  });
  /** Holds the bus messages of the refreshing instance. */
  let replies: ReplyHoldingProxy;

  beforeAll(async () => {
    replies = await ReplyHoldingProxy.start(caches.server.port);
  });

  afterAll(async () => {
    await replies?.close();
  });

  it.each([
    ['read from L2 first', true],
    ['nothing read first', false],
  ])('the forced value is cached (%s)', async (_, readFirst) => {
    const key = `k-${readFirst}`;
    const writer = await caches.open();
    const fresh = await caches.openAt(replies.url);
    replies.holdSubscribers();
    await writer.set(key, 'old');
    if (readFirst) expect(await fresh.getOrSet(key, async () => 'plain')).toBe('old');
    let runs = 0;
    const forced = await fresh.getOrSet(
      key,
      async () => {
        runs += 1;
        // The message of the write of 'old' arrives while the run lasts.
        const message = heard(fresh, key);
        replies.release();
        await message;
        return 'forced';
      },
      { forceFresh: true },
    );
    expect(forced).toBe('forced');
    expect(runs).toBe(1);
    expect(await fresh.get(key)).toBe('forced');
    expect(await (await caches.open()).get(key)).toBe('forced');
  });
});

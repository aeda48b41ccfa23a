import { startPrivateRedisOrSkip } from '@noa/testkit';
import { describe, expect, it } from 'vitest';
import { privateRedisCaches, trackAwaitingReplies } from './helpers.js';

const started = await startPrivateRedisOrSkip();

/** Commands awaiting replies at once: a chunk's (or a little more), far below a whole batch's. */
const QUEUED_AT_MOST = 5_000;

/**
 * Batch calls with tens of thousands of keys: every Redis call must get its answer within its
 * own deadline, not queue behind the rest of the batch past it (failures that open the breaker
 * while the commands still land). The queue is what is checked: the commands awaiting replies
 * stay at about a chunk's. The 500 ms default deadline told the two apart only on a quiet
 * machine: on a loaded one (load 10-15 on 2 cores) a single chunk's calls outlived it, while
 * 20,000 leases sent at once all had their answers within 2 s. Each cache gets a
 * deadline generous for a healthy Redis, so any error counted is a real one.
 * getOrSetMany's value writes go out in chunks too (all at once, 20,000 SETs awaited replies
 * together, which is what failed under load).
 */
describe.skipIf(started.skip !== undefined)('large batches', () => {
  const fixture = privateRedisCaches(started, {
    prefix: 'batch:',
    l1: { maxEntries: 100_000 },
    operationTimeoutMs: 10_000,
  });
  const { open } = fixture;

  it('getOrSetMany of 20,000 cold keys caches them all and leaves no lease behind', async () => {
    const client = fixture.client();
    const awaiting = trackAwaitingReplies(client);
    const cache = await open({ redis: client });
    const keys = Array.from({ length: 20_000 }, (_, index) => `k${index}`);
    let factoryCalls = 0;
    let awaitingBeforeFactory = Number.NaN;
    const values = await cache.getOrSetMany(keys, async (missing) => {
      // Reads and leases are done by now; the writes of the values come after.
      awaitingBeforeFactory = awaiting.most();
      factoryCalls += 1;
      return missing.map((key) => key.toUpperCase());
    });
    expect(factoryCalls).toBe(1);
    expect(values).toEqual(keys.map((key) => key.toUpperCase()));
    expect(awaitingBeforeFactory).toBeLessThanOrEqual(QUEUED_AT_MOST);
    // The whole call, value writes included.
    expect(awaiting.most()).toBeLessThanOrEqual(QUEUED_AT_MOST);
    expect(cache.stats().l2Errors).toBe(0);
    expect(cache.stats().l2).toBe('closed');
    // The leases were all released: another instance would otherwise wait on each for `leaseMs`.
    expect(await fixture.admin.keys('batch:__lease:*')).toEqual([]);
    const other = await open();
    expect(await other.getMany(keys)).toEqual(values);
  }, 60_000);

  it('getOrSetMany does not write a value over a delete of its key made while its chunks went out', async () => {
    const cache = await open();
    const keys = Array.from({ length: 5_000 }, (_, index) => `d${index}`);
    const last = keys.at(-1)!;
    let deleted: Promise<unknown> | undefined;
    // The last key's entry is prepared with the others, before any L2 write is sent; its value
    // goes in the fifth chunk, after a delete issued once the first chunk is written (the
    // first key's 'set' event comes once its L2 write is done).
    cache.on('set', ({ key }) => {
      if (key === keys[0] && deleted === undefined) deleted = cache.delete(last);
    });
    await cache.getOrSetMany(keys, async (missing) => missing.map((key) => key.toUpperCase()));
    await deleted;
    const other = await open();
    expect(await other.get(last)).toBeUndefined();
    expect(await other.get(keys[0]!)).toBe(keys[0]!.toUpperCase());
  }, 60_000);

  it('setMany of 100,000 tagged entries reaches L2 without a call past its deadline', async () => {
    const client = fixture.client();
    const awaiting = trackAwaitingReplies(client);
    const cache = await open({ redis: client });
    const keys = Array.from({ length: 100_000 }, (_, index) => `s${index}`);
    await cache.setMany(keys.map((key) => ({ key, value: { key, pad: 'x'.repeat(100) }, tags: ['many'] })));
    expect(awaiting.most()).toBeLessThanOrEqual(QUEUED_AT_MOST);
    expect(cache.stats().l2Errors).toBe(0);
    expect(cache.stats().l2).toBe('closed');
    const other = await open();
    expect((await other.getMany(keys)).filter((value) => value === undefined).length).toBe(0);
  }, 60_000);

  it('getMany, expireMany and deleteMany of 150,000 keys reach L2 and the other instances (arguments spread into one call overflowed the stack: nothing read, nothing deleted, no message)', async () => {
    const cache = await open({ graceMs: 60_000 });
    const keys = Array.from({ length: 150_000 }, (_, index) => `m${index}`);
    const [first, middle, last] = [keys[0]!, keys[75_000]!, keys.at(-1)!];
    await cache.set(first, 'first');
    await cache.set(last, 'last');
    const reader = await open();
    const values = await reader.getMany(keys);
    expect([values[0], values[75_000], values.at(-1)]).toEqual(['first', undefined, 'last']);
    expect(reader.stats().l2Errors).toBe(0);

    // Marked stale in L2 and, through one message, in the other instances' L1.
    const expired = new Promise<void>((resolve) =>
      reader.onInvalidation((message) => message.t === 'exp' && resolve()),
    );
    await cache.expireMany(keys);
    await expired;
    expect(reader.getLocal(first)).toBeUndefined();
    expect(await (await open()).get(last)).toBeUndefined();
    expect(cache.stats().l2Errors).toBe(0);

    // Every key held, in L2 only: deleteMany removes whatever its keys hold.
    const pipeline = fixture.admin.pipeline();
    for (const key of keys) pipeline.set(`batch:v:${key}`, 'x');
    await pipeline.exec();
    await reader.set(first, 'again');
    const deleted = new Promise<void>((resolve) =>
      reader.onInvalidation((message) => message.t === 'del' && resolve()),
    );
    expect(await cache.deleteMany(keys)).toBe(true);
    await deleted;
    expect(reader.getLocal(first)).toBeUndefined();
    expect(cache.stats().l2Errors).toBe(0);
    expect(await fixture.admin.exists(`batch:v:${first}`, `batch:v:${middle}`, `batch:v:${last}`)).toBe(0);
  }, 60_000);
});

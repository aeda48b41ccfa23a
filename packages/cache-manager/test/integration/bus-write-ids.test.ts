import { generousDeadlineMs, type PrivateRedis, startPrivateRedisOrSkip } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cache, type CacheOptions } from '../../src/index.js';
import { heard } from './helpers.js';
import { HoldingProxy } from './holding-proxy.js';
import { ReplyHoldingProxy } from './reply-holding-proxy.js';

const started = await startPrivateRedisOrSkip();

/**
 * A read of a key from L2 in flight when a bus message about the key arrives. The message names
 * the write it announces (its write id, which the value stored by that write carries too): a
 * read that answered with that very value keeps it (one L2 read, put in L1); one that answered
 * with an older value reads again. Reads are counted by the private server (`INFO commandstats`).
 */
describe.skipIf(started.skip !== undefined)('a bus message about a key whose L2 read is in flight', () => {
  const prefix = 'ids:';
  let server: PrivateRedis;
  let admin: Redis;
  /** Holds the reader's commands before they reach Redis. */
  let requests: HoldingProxy;
  /** Holds the answers Redis gave the reader. */
  let replies: ReplyHoldingProxy;
  const clients: Redis[] = [];
  const caches: Cache[] = [];

  async function open(url: string, options: CacheOptions = {}): Promise<Cache> {
    const client = new Redis(url);
    client.on('error', () => {});
    clients.push(client);
    const cache = new Cache({
      redis: client,
      prefix,
      ttlMs: 60_000,
      operationTimeoutMs: generousDeadlineMs,
      ...options,
    });
    caches.push(cache);
    await cache.ready();
    return cache;
  }

  /** The L2 reads (GET and MGET) the server has run. */
  async function reads(): Promise<number> {
    const stats = await admin.info('commandstats');
    const calls = (name: string) => Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(stats)?.[1] ?? 0);
    return calls('get') + calls('mget');
  }

  beforeAll(async () => {
    server = started.redis!;
    admin = new Redis(server.url);
    requests = await HoldingProxy.start(server.port);
    replies = await ReplyHoldingProxy.start(server.port);
  });

  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
    for (const client of clients) client.disconnect();
    admin?.disconnect();
    await requests?.close();
    await replies?.close();
    await server?.stop();
  });

  type Read = (cache: Cache, key: string) => Promise<unknown>;
  const readers: Record<string, { read: Read; sees: (value: string) => unknown }> = {
    get: { read: (cache, key) => cache.get(key), sees: (value) => value },
    has: { read: (cache, key) => cache.has(key), sees: () => true },
    getOrSet: { read: (cache, key) => cache.getOrSet(key, async () => 'factory'), sees: (value) => value },
    getMany: { read: (cache, key) => cache.getMany([key]), sees: (value) => [value] },
    getOrSetMany: {
      read: (cache, key) => cache.getOrSetMany([key], async (keys) => keys.map(() => 'factory')),
      sees: (value) => [value],
    },
  };

  for (const [name, { read, sees }] of Object.entries(readers)) {
    it(`${name}: the read answered with the value the message announces: kept and put in L1, one L2 read`, async () => {
      const reader = await open(requests.url);
      const writer = await open(server.url);
      const key = `seen-${name}`;
      // The first write's message has come and gone before the read starts.
      const first = heard(reader, key);
      await writer.set(key, 'old');
      await first;
      // The reader's read waits in front of Redis while the write lands and its message arrives.
      requests.holdMatching = new RegExp(key);
      const before = await reads();
      const reading = read(reader, key);
      await requests.held();
      const message = heard(reader, key);
      await writer.set(key, 'new');
      await message;
      requests.release();
      expect(await reading).toEqual(sees('new'));
      expect(await reads()).toBe(before + 1);
      expect(reader.getLocal(key)).toBe('new');
      expect(await reader.get(key)).toBe('new');
      expect(await reads()).toBe(before + 1);
    });
  }

  it('the read answered with the value from before the announced write: read again, the new value in L1', async () => {
    const reader = await open(replies.url);
    const writer = await open(server.url);
    const key = 'older';
    const first = heard(reader, key);
    await writer.set(key, 'old');
    await first;
    replies.holdRepliesAfter(new RegExp(key));
    const before = await reads();
    const reading = reader.get(key);
    await replies.replyHeld();
    const message = heard(reader, key);
    await writer.set(key, 'new');
    await message;
    replies.release();
    expect(await reading).toBe('new');
    expect(await reads()).toBe(before + 2);
    expect(reader.getLocal(key)).toBe('new');
  });

  it('a message of the previous release (no write ids) has the read re-read, as before', async () => {
    const reader = await open(requests.url);
    const writer = await open(server.url);
    const key = 'previous-release';
    const written = heard(reader, key);
    await writer.set(key, 'new');
    await written;
    requests.holdMatching = new RegExp(key);
    const before = await reads();
    const reading = reader.get(key);
    await requests.held();
    const message = heard(reader, key);
    await admin.publish(
      `${prefix}__bus`,
      JSON.stringify({ o: 'previous', t: 'set', k: [key], at: Date.now() }),
    );
    await message;
    requests.release();
    expect(await reading).toBe('new');
    expect(await reads()).toBe(before + 2);
    expect(reader.getLocal(key)).toBe('new');
  });

  /** Resolves once the server has run `count` L2 reads in all (5 s at most). */
  async function polled(count: number): Promise<void> {
    const deadline = Date.now() + 5_000;
    while ((await reads()) < count && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 5));
    expect(await reads()).toBeGreaterThanOrEqual(count);
  }

  /** A factory that starts, and returns `value` once `finish()` is called. */
  function gated(value: string): {
    factory: () => Promise<string>;
    started: Promise<void>;
    finish: () => void;
  } {
    let finish!: () => void;
    let start!: () => void;
    const started = new Promise<void>((resolve) => {
      start = resolve;
    });
    const finished = new Promise<void>((resolve) => {
      finish = resolve;
    });
    return {
      factory: async () => {
        start();
        await finished;
        return value;
      },
      started,
      finish,
    };
  }

  it('forceFresh with clocks behind: the forced call runs its factory, its lease waiter takes the new value', async () => {
    const key = 'forced-behind';
    const options = { ttlMs: 3_600_000, lock: { pollMs: 20, timeoutMs: 5_000 } };
    const holder = await open(server.url, { ...options, clock: { now: () => Date.now() - 600_000 } });
    const waiter = await open(server.url, options);
    await waiter.set(key, 'old');
    const run = gated('new');
    const holding = holder.getOrSet(key, run.factory, { forceFresh: true });
    // Its clock is behind the one that wrote 'old': by the clocks, 'old' was written after its
    // call began, and it served 'old' without running its factory.
    expect(await Promise.race([run.started.then(() => 'factory started'), holding])).toBe('factory started');
    const before = await reads();
    let waiterRuns = 0;
    const waiting = waiter.getOrSet(
      key,
      async () => {
        waiterRuns += 1;
        return 'waiter';
      },
      { forceFresh: true },
    );
    // The waiter has read what its call replaces and polled once: it waits on the lease.
    await polled(before + 2);
    run.finish();
    expect(await holding).toBe('new');
    // Its value's createdAt is ten minutes before the waiter's call began: by the clocks, not
    // written since (the waiter ran its factory again). It is of another write than the one L2
    // held as the waiter's call began: it is.
    expect(await waiting).toBe('new');
    expect(waiterRuns).toBe(0);
    expect(await waiter.get(key)).toBe('new');
  });

  it('forceFresh: a lease waiter does not take the value it was to replace, written by a clock ahead', async () => {
    const key = 'forced-ahead';
    const options = { ttlMs: 3_600_000, lock: { pollMs: 20, timeoutMs: 5_000 } };
    const ahead = await open(server.url, { ...options, clock: { now: () => Date.now() + 600_000 } });
    const holder = await open(server.url, options);
    const waiter = await open(server.url, options);
    await ahead.set(key, 'old');
    const run = gated('new');
    const holding = holder.getOrSet(key, run.factory, { forceFresh: true });
    expect(await Promise.race([run.started.then(() => 'factory started'), holding])).toBe('factory started');
    const before = await reads();
    const waiting = waiter.getOrSet(key, async () => 'waiter', { forceFresh: true });
    // The waiter polls L2 while the holder's factory runs: it finds the old value there, whose
    // createdAt is ten minutes after the waiter's call began (with its first read, two reads).
    await polled(before + 2);
    run.finish();
    expect(await holding).toBe('new');
    expect(await waiting).toBe('new');
  });

  it('history: reads racing writes of two instances never go back, and end on the last write', async () => {
    const reader = await open(server.url);
    const writers = [await open(server.url), await open(server.url)];
    const key = 'history';
    const writes = 300;
    const first = heard(reader, key);
    await writers[0]!.set(key, 0);
    await first;
    // Writes land in order (each awaited); after the reader has applied m messages about the
    // key, at least m writes have landed, so L2 holds at least the m-th value: a read started
    // then answers with it or a later one, from L2 or from L1.
    let announced = 0;
    reader.onInvalidation((message) => {
      for (const named of message.k) if (named === key) announced += 1;
    });
    let writing = true;
    const readAll = async (useGetOrSet: boolean) => {
      let last = -1;
      while (writing) {
        const floor = announced;
        const value = (
          useGetOrSet ? await reader.getOrSet(key, async () => -1) : await reader.get(key)
        ) as number;
        expect(value).toBeGreaterThanOrEqual(Math.max(last, floor));
        last = value;
        // An L1 hit resolves at once: without a turn of the loop, the writes would never run.
        await new Promise((resolve) => setImmediate(resolve));
      }
    };
    const readers = [readAll(false), readAll(true)];
    for (let value = 1; value <= writes; value += 1) await writers[value % 2]!.set(key, value);
    const deadline = Date.now() + 5_000;
    while (announced < writes && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 5));
    writing = false;
    await Promise.all(readers);
    expect(announced).toBe(writes);
    expect([undefined, writes]).toContain(reader.getLocal(key));
    expect(await reader.get(key)).toBe(writes);
  });
});

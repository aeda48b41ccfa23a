import { delay } from '@noa/core';
import { generousDeadlineMs, startPrivateRedisOrSkip } from '@noa/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cache } from '../../src/index.js';
import { heard, privateRedisCaches } from './helpers.js';
import { ReplyHoldingProxy } from './reply-holding-proxy.js';

const started = await startPrivateRedisOrSkip();

/**
 * A factory that fails over a value in grace serves that value and backs it off: a copy kept
 * fresh in L1 for `graceBackoffMs`, so that the failing source is not called again at once.
 * The copy must not bring back a value that a change of the key (a delete, another write)
 * replaced after the read that found it. A change heard while the run lasts supersedes the
 * run; one heard between that read and the run's start (here: while the reply to the run's
 * lease, SET NX, is held by a proxy) did not, and the back-off copy put the old value back in
 * L1 over it, served for the whole back-off although L2 and every other instance had the change.
 */
describe.skipIf(started.skip !== undefined)('the back-off copy after a change heard before the run', () => {
  const caches = privateRedisCaches(started, {
    prefix: 'back-off-change:',
    ttlMs: 60_000,
    graceBackoffMs: 60_000,
    operationTimeoutMs: generousDeadlineMs,
  });
  let replies: ReplyHoldingProxy;

  beforeAll(async () => {
    replies = await ReplyHoldingProxy.start(caches.server.port);
  });

  afterAll(async () => {
    await replies?.close();
  });

  const failing = async (): Promise<never> => {
    throw new Error('source down');
  };

  const runs: [string, (cache: Cache, key: string) => Promise<unknown>][] = [
    ['getOrSet', (cache, key) => cache.getOrSet(key, failing)],
    ['getOrSetMany', async (cache, key) => (await cache.getOrSetMany([key], failing))[0]],
  ];

  /**
   * Writes `key` in grace, starts `run` on a reader through the proxy, holds the reply to its
   * lease, and runs `change` (heard by the reader) before the reply is let through.
   */
  async function raceBeforeRun(
    key: string,
    run: (cache: Cache, key: string) => Promise<unknown>,
    change?: (writer: Cache) => Promise<unknown>,
  ): Promise<{ reader: Cache; writer: Cache; served: unknown }> {
    const writer = await caches.open();
    const reader = await caches.openAt(replies.url);
    const written = heard(reader, key);
    await writer.set(key, 'old', { ttlMs: 1, graceMs: 600_000 });
    await written;
    await delay(5);
    replies.holdRepliesAfter(/\r\nNX\r\n/);
    const serving = run(reader, key);
    await replies.replyHeld();
    if (change) {
      const changed = heard(reader, key);
      await change(writer);
      await changed;
    }
    replies.release();
    return { reader, writer, served: await serving };
  }

  it.each(runs)('a delete heard before the %s run leaves no copy of the deleted value', async (name, run) => {
    const key = `deleted-${name}`;
    const { reader, served } = await raceBeforeRun(key, run, (writer) => writer.delete(key));
    // The call began before the delete: its value in grace is served.
    expect(served).toBe('old');
    expect(reader.getLocal(key)).toBeUndefined();
    expect(await reader.get(key)).toBeUndefined();
  });

  it.each(runs)('a write heard before the %s run leaves no copy of the older value', async (name, run) => {
    const key = `rewritten-${name}`;
    // In grace too (a fresh one is served by the double check under the lease, and no run starts).
    const { reader, served } = await raceBeforeRun(key, run, (writer) =>
      writer.set(key, 'new', { ttlMs: 1, graceMs: 600_000 }),
    );
    expect(served).toBe('old');
    expect(reader.getLocal(key)).toBeUndefined();
  });

  it('a delete heard before a lease waiter’s wait leaves no copy when the holder fails', async () => {
    const key = 'deleted-waiter';
    const writer = await caches.open();
    const holder = await caches.open();
    const reader = await caches.openAt(replies.url);
    const written = heard(reader, key);
    await writer.set(key, 'old', { ttlMs: 1, graceMs: 600_000 });
    await written;
    await delay(5);
    // The holder's run takes the lease and fails once let go.
    let fail!: () => void;
    const failing = new Promise<never>((_, reject) => {
      fail = () => reject(new Error('source down'));
    });
    const held = holder.getOrSet(key, () => failing);
    while ((await caches.admin.exists(`back-off-change:__lease:${key}`)) === 0) await delay(5);
    replies.holdRepliesAfter(/\r\nNX\r\n/);
    const serving = reader.getOrSet(key, async () => 'computed');
    await replies.replyHeld();
    const deleted = heard(reader, key);
    await writer.delete(key);
    await deleted;
    replies.release();
    await delay(50);
    fail();
    expect(await held).toBe('old');
    // The call began before the delete: its value in grace is served, not backed off.
    expect(await serving).toBe('old');
    expect(reader.getLocal(key)).toBeUndefined();
  });

  it.each(runs)('with no change, the %s run’s failure backs off the value in grace', async (name, run) => {
    const key = `quiet-${name}`;
    const { reader, served } = await raceBeforeRun(key, run);
    expect(served).toBe('old');
    expect(reader.getLocal(key)).toBe('old');
  });
});

import v8 from 'node:v8';
import vm from 'node:vm';
import { delay } from '@noa/core';
import { startPrivateRedisOrSkip } from '@noa/testkit';
import { describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';
import { privateRedisCaches } from './helpers.js';

const started = await startPrivateRedisOrSkip();

v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as () => void;

/** Heap in use after a full collection: what is retained, not garbage not yet collected. */
function retainedHeap(): number {
  collectGarbage();
  return process.memoryUsage().heapUsed;
}

/** Each sample's full collection may take at most this share of the time `work` runs. */
const SAMPLING_SHARE = 0.2;

/**
 * The most heap retained while `work` runs above what was retained before it, sampled with a
 * full collection each time (so garbage of finished pages is not counted), every 25 ms or,
 * when collections are slow, often enough that they take {@link SAMPLING_SHARE} of the time.
 * Every 25 ms regardless, under load (4 CPU burners on 2 cores) each collection took ~100 ms
 * and the sampler held the event loop ~90% of the time: a deleteByTag that takes seconds took
 * 83 s, 76 s of it in collections, and the tests hit their timeouts. What they guard, a tag's
 * keys held until the end, grows until the end, so a later sample sees it all the same.
 */
async function peakRetainedGrowth(work: () => Promise<unknown>): Promise<number> {
  const before = retainedHeap();
  let peak = before;
  let sampler: NodeJS.Timeout | undefined;
  const sample = () => {
    const started = performance.now();
    peak = Math.max(peak, retainedHeap());
    const tookMs = performance.now() - started;
    sampler = setTimeout(sample, Math.max(25, (tookMs * (1 - SAMPLING_SHARE)) / SAMPLING_SHARE));
  };
  sampler = setTimeout(sample, 25);
  try {
    await work();
  } finally {
    clearTimeout(sampler);
  }
  // One more once it is done: a short `work` may have ended before the first sample.
  peak = Math.max(peak, retainedHeap());
  return peak - before;
}

const TAG_KEYS = 100_000;
const KEY_CHARS = 300;
/** Every key of the tag, held at once, takes at least this much (one byte per character). */
const TAG_BYTES = TAG_KEYS * KEY_CHARS;
/** The tag paused mid-way (nothing measured): 20 SSCAN pages. */
const PAUSED_TAG_KEYS = 20_000;
const keyOf = (index: number) => `${String(index).padStart(8, '0')}:${'k'.repeat(KEY_CHARS - 9)}`;

/**
 * `deleteByTag` and `expireByTag` of a 100,000-key tag hold one page of it at a time: a tag
 * of a million keys must not need a million strings in memory.
 */
describe.skipIf(started.skip !== undefined)('tag invalidation memory', () => {
  const fixture = privateRedisCaches(
    started, // A small L1: the filler's copies would otherwise be part of what is measured.
    { prefix: 'mem:', l1: { maxEntries: 100 } },
  );
  const { open } = fixture;

  /**
   * Writes `count` keys of `tag` through a cache of its own, without a bus, closed after: its
   * `set` messages (5,000 long keys each) reached every cache the file had opened, so each fill
   * took longer than the one before (3 s, 8 s, 13 s), and none of them is part of what is measured.
   */
  async function fill(tag: string, count = TAG_KEYS): Promise<void> {
    const filler = new Cache({
      redis: fixture.client(),
      prefix: 'mem:',
      bus: false,
      l1: { maxEntries: 100 },
      operationTimeoutMs: 10_000,
      graceMs: 600_000,
    });
    try {
      await filler.ready();
      for (let start = 0; start < count; start += 5_000) {
        const entries = [];
        for (let index = start; index < Math.min(count, start + 5_000); index += 1)
          entries.push({ key: keyOf(index), value: index, tags: [tag] });
        await filler.setMany(entries);
      }
    } finally {
      await filler.close();
    }
  }

  it('deleteByTag retains far less than the tag while it runs, and counts every key once', async () => {
    await fill('big-delete');
    const deleter = await open({ operationTimeoutMs: 10_000 });
    let events = 0;
    deleter.on('delete', () => {
      events += 1;
    });
    let removed = 0;
    const growth = await peakRetainedGrowth(async () => {
      removed = await deleter.deleteByTag('big-delete');
    });
    expect(removed).toBe(TAG_KEYS);
    expect(events).toBe(TAG_KEYS);
    expect(await fixture.admin.exists(`mem:v:${keyOf(0)}`, `mem:v:${keyOf(TAG_KEYS - 1)}`)).toBe(0);
    expect(growth).toBeLessThan(TAG_BYTES / 4);
  }, 120_000);

  it('expireByTag retains far less than the tag while it runs', async () => {
    await fill('big-expire');
    const expirer = await open({ operationTimeoutMs: 10_000, graceMs: 600_000 });
    let marked = 0;
    const growth = await peakRetainedGrowth(async () => {
      marked = await expirer.expireByTag('big-expire');
    });
    expect(marked).toBe(TAG_KEYS);
    expect(growth).toBeLessThan(TAG_BYTES / 4);
    const reader = await open();
    expect(await reader.get(keyOf(0))).toBeUndefined();
    expect(await reader.get(keyOf(TAG_KEYS - 1))).toBeUndefined();
  }, 120_000);

  // No memory is measured here: a tag of 20 pages (as in the next test) is enough to pause mid-way.
  it('deleteByTag with Redis paused mid-way: returns the keys its finished pages deleted, and a retry deletes the rest', async () => {
    await fill('big-paused', PAUSED_TAG_KEYS);
    const deleter = await open({ operationTimeoutMs: 200 });
    let events = 0;
    deleter.on('delete', () => {
      events += 1;
    });
    const done = deleter.deleteByTag('big-paused');
    const watcher = fixture.client();
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && (await watcher.scard('mem:__tag:big-paused')) > PAUSED_TAG_KEYS * 0.8)
      await delay(5);
    await fixture.server.pause(1_500);
    const removed = await done;
    expect(removed).toBeGreaterThan(0);
    expect(removed).toBeLessThan(PAUSED_TAG_KEYS);
    expect(events).toBe(removed);
    expect(deleter.stats().l2Errors).toBeGreaterThan(0);
    while (Date.now() < deadline && (await watcher.ping().catch(() => '')) !== 'PONG') await delay(50);
    // The keys it counted are gone. A delete sent before the pause but answered past its
    // deadline lands when Redis resumes, uncounted: the retry finds those absent.
    // Counted among the tag's own keys: the earlier tests' keys past them are still in Redis.
    let remaining = 0;
    for (let start = 0; start < PAUSED_TAG_KEYS; start += 5_000) {
      const keys = Array.from({ length: 5_000 }, (_, index) => `mem:v:${keyOf(start + index)}`);
      remaining += await watcher.exists(...keys);
    }
    expect(remaining).toBeLessThanOrEqual(PAUSED_TAG_KEYS - removed);
    expect(remaining).toBeGreaterThan(0);
    const retry = await open({ operationTimeoutMs: 10_000 });
    expect(await retry.deleteByTag('big-paused')).toBe(remaining);
    expect(await watcher.exists('mem:__tag:big-paused')).toBe(0);
  }, 120_000);

  it('deleteByTag paused mid-way with onBackendError throw: rejects, and the tag reaches the other instances once Redis is back', async () => {
    const keys = Array.from({ length: 20_000 }, (_, index) => keyOf(index));
    const filler = await open({ operationTimeoutMs: 10_000 });
    for (let start = 0; start < keys.length; start += 5_000)
      await filler.setMany(
        keys.slice(start, start + 5_000).map((key) => ({ key, value: 1, tags: ['thrown'] })),
      );
    const reader = await open({ operationTimeoutMs: 10_000, l1: { maxEntries: 50_000 } });
    await reader.getMany(keys);
    expect(keys.every((key) => reader.getLocal(key) === 1)).toBe(true);
    let announced = false;
    reader.onInvalidation((message) => {
      if (message.t === 'tag' && message.k.includes('thrown')) announced = true;
    });
    const deleter = await open({ operationTimeoutMs: 200, onBackendError: 'throw' });
    const done = deleter.deleteByTag('thrown');
    const watcher = fixture.client();
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && (await watcher.scard('mem:__tag:thrown')) > keys.length * 0.8)
      await delay(5);
    await fixture.server.pause(1_500);
    await expect(done).rejects.toMatchObject({ code: 'NOA_CACHE_BACKEND_UNAVAILABLE' });
    expect(announced).toBe(false);
    // The lost tag message is published again once Redis answers: the reader drops its copies.
    while (Date.now() < deadline && !announced) await delay(50);
    expect(announced).toBe(true);
    expect(keys.filter((key) => reader.getLocal(key) !== undefined)).toEqual([]);
  }, 60_000);
});

import { delay } from '@noa/core';
import { generousDeadlineMs, startPrivateRedisOrSkip } from '@noa/testkit';
import { describe, expect, it } from 'vitest';
import type { Cache, CacheOptions } from '../../src/index.js';
import { pruneTagsWithChance } from '../../src/l2/tag-pruning.js';
import { privateRedisCaches } from './helpers.js';

const started = await startPrivateRedisOrSkip();
// The commands are counted exactly: no tagged write here prunes its set (tag-prune.test.ts does).
pruneTagsWithChance(0);

/**
 * What a factory run's compare-and-set write costs in Redis commands, counted by a private
 * server (`INFO commandstats`, reset before each call; it counts the commands a script runs
 * too, listed here apart from the ones sent): the write is one EVALSHA, a
 * `getOrSetMany`'s values one EVALSHA for the batch, and a run that read no L2 value first
 * (`forceFresh`, an early refresh with locks off) one read at its start. A run that replaces a
 * value also extends it as it starts, so that it outlives the run (one EVALSHA, its GET and
 * PEXPIRE). No bus (`bus: false`): only the call's own commands are counted.
 */
describe.skipIf(started.skip !== undefined)('the Redis commands of a factory run’s write', () => {
  const redis = privateRedisCaches(started, {
    prefix: 'trips:',
    ttlMs: 60_000,
    bus: false,
    operationTimeoutMs: generousDeadlineMs,
  });

  async function open(options: CacheOptions = {}): Promise<Cache> {
    const cache = await redis.open(options);
    // Whatever a first write and read load once (shared structures) is not counted below.
    await cache.set('warm-up', 'value');
    // A run over a value: the extension's script is loaded once (an EVAL after NOSCRIPT).
    await cache.getOrSet('warm-up', async () => 'again', { forceFresh: true });
    await cache.getOrSetMany(['warm-up-many'], async (keys) => keys.map(() => 'value'));
    await cache.deleteMany(['warm-up', 'warm-up-many']);
    return cache;
  }

  /** The commands the server ran during `call`, by name (the counting's own left out). */
  async function commands(call: () => Promise<unknown>): Promise<Record<string, number>> {
    await redis.admin.config('RESETSTAT');
    await call();
    const counts: Record<string, number> = {};
    for (const [, name, calls] of (await redis.admin.info('commandstats')).matchAll(
      /cmdstat_([^:]+):calls=(\d+)/g,
    )) {
      if (name === 'info' || name!.startsWith('config')) continue;
      counts[name!] = Number(calls);
    }
    return counts;
  }

  it('getOrSetMany of 50 missing keys: one MGET, one compare-and-set script for all values', async () => {
    const cache = await open({ lock: { enabled: false } });
    const keys = Array.from({ length: 50 }, (_, index) => `many-${index}`);
    const counts = await commands(() =>
      cache.getOrSetMany(keys, async (asked) => asked.map((key) => `value of ${key}`), { tags: ['batch'] }),
    );
    // Sent: one MGET and one EVALSHA (two round trips). Run by the script: per key a GET (the
    // compare), a SET, and the tag set's SADD and two PEXPIREs.
    expect(counts).toEqual({ mget: 1, evalsha: 1, get: 50, set: 50, sadd: 50, pexpire: 100 });
    expect(await cache.getMany(keys)).toEqual(keys.map((key) => `value of ${key}`));
  });

  it('forceFresh with locks off: the read at its start, one compare-and-set write', async () => {
    const cache = await open({ lock: { enabled: false } });
    await cache.set('forced', 'first');
    const counts = await commands(() => cache.getOrSet('forced', async () => 'second', { forceFresh: true }));
    // Sent: the MGET that names the write it replaces (its bytes kept for the compare), the
    // extension's EVALSHA (GET, PEXPIRE) and the write's (GET and SET run by it).
    expect(counts).toEqual({ mget: 1, evalsha: 2, get: 2, set: 1, pexpire: 1 });
  });

  it('forceFresh under a lease: its double check is the compare, one extension', async () => {
    const cache = await open();
    await cache.set('forced-leased', 'first');
    const counts = await commands(() =>
      cache.getOrSet('forced-leased', async () => 'second', { forceFresh: true }),
    );
    // Sent: the MGET naming the write replaced, the forced lease's EVALSHA (GET, SET), the
    // double check's MGET, the extension's EVALSHA, the write's and the release's (GET,
    // PEXPIRE; the lease's GET, the value's GET, SET; GET, DEL run by them). As many round trips
    // as with the SET NX it replaced; the write checks the lease in its own script.
    expect(counts).toEqual({ mget: 2, set: 2, evalsha: 4, get: 5, del: 1, pexpire: 1 });
  });

  it('an early refresh with locks off: one read at its start, one compare-and-set write', async () => {
    const cache = await open({ lock: { enabled: false }, ttlMs: 1_000, refreshThresholdMs: 900 });
    await cache.set('ahead', 'first');
    await delay(150);
    const counts = await commands(async () => {
      let refreshed!: () => void;
      const done = new Promise<void>((resolve) => {
        refreshed = resolve;
      });
      const served = await cache.getOrSet('ahead', async () => {
        setTimeout(refreshed, 50);
        return 'second';
      });
      expect(served).toBe('first');
      await done;
    });
    // An L1 hit that starts the refresh: its read (MGET), the extension of the value it read
    // (EVALSHA: GET, PEXPIRE) and its write (EVALSHA: GET, SET).
    expect(counts).toEqual({ mget: 1, evalsha: 2, get: 2, set: 1, pexpire: 1 });
    expect(cache.getLocal('ahead')).toBe('second');
  });
});

import { delay } from '@noa/core';
import { generousDeadlineMs } from '@noa/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { Cache, type CacheEventName } from '../../src/index.js';
import { pruneTagsWithChance } from '../../src/l2/tag-pruning.js';
import { counting, dropPrefix, Redis, redisUp, redisUrl, testPrefix } from './helpers.js';

// Script calls are counted exactly: no tagged write here prunes its set (tag-prune.test.ts does).
pruneTagsWithChance(0);

describe.skipIf(!redisUp)('getOrSetMany on a real Redis', () => {
  const prefix = testPrefix('cm_many');
  const redis = redisUp ? new Redis(redisUrl) : undefined;
  const caches: Cache[] = [];
  const open = (options: ConstructorParameters<typeof Cache>[0] = {}) => {
    const cache = new Cache({ redis, prefix, operationTimeoutMs: generousDeadlineMs, ...options });
    caches.push(cache);
    return cache;
  };
  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
    if (redis) {
      await dropPrefix(prefix);
      redis.disconnect();
    }
  });

  it('reads every key in one MGET and writes the computed values in one compare-and-set script call', async () => {
    await open().setMany([
      { key: 'io:1', value: 1 },
      { key: 'io:2', value: 2 },
    ]);
    const { client, calls } = counting(redis!, ['mgetBuffer', 'getBuffer', 'pipeline', 'evalsha']);
    const cache = new Cache({
      redis: client,
      prefix,
      bus: false,
      lock: { enabled: false },
      operationTimeoutMs: generousDeadlineMs,
    });
    caches.push(cache);
    // What `ready()` sends (the shared structures' load) is not counted.
    await cache.ready();
    calls.clear();
    const keys = ['io:1', 'io:2', 'io:3', 'io:4', 'io:5'];
    const values = await cache.getOrSetMany(keys, (missing) => missing.map((key) => Number(key.slice(3))));
    expect(values).toEqual([1, 2, 3, 4, 5]);
    expect(Object.fromEntries(calls)).toEqual({ mgetBuffer: 1, evalsha: 1 });
    // With leases, the keys it leased are read once more (the double check `getOrSet` makes too),
    // and each lease is released (one script call each) after the values' one.
    const { client: locking, calls: lockingCalls } = counting(redis!, [
      'mgetBuffer',
      'getBuffer',
      'pipeline',
      'set',
      'evalsha',
    ]);
    const leased = new Cache({ redis: locking, prefix, bus: false, operationTimeoutMs: generousDeadlineMs });
    caches.push(leased);
    await leased.ready();
    lockingCalls.clear();
    await leased.getOrSetMany(['io:1', 'io:6', 'io:7'], (missing) => missing.map(() => 0));
    expect(Object.fromEntries(lockingCalls)).toEqual({ mgetBuffer: 2, set: 2, evalsha: 3 });
  });

  it('a key whose holder on another instance fails is computed alone by the waiter', async () => {
    const a = open();
    const b = open();
    await Promise.all([a.ready(), b.ready()]);
    const failing = a.getOrSetMany(['hand:1'], async () => {
      await delay(100);
      throw new Error('holder failed');
    });
    await delay(30);
    const asked: string[][] = [];
    const taken = b.getOrSetMany(['hand:1', 'hand:2'], (keys) => {
      asked.push([...keys]);
      return keys.map((key) => `b ${key}`);
    });
    await expect(failing).rejects.toMatchObject({ code: 'NOA_CACHE_FACTORY_FAILED' });
    expect(await taken).toEqual(['b hand:1', 'b hand:2']);
    // hand:2 in the batch; hand:1, whose lease a held, alone once a released it.
    expect(asked).toEqual([['hand:2'], ['hand:1']]);
  });

  it('emits hit and miss per key, and set for each value written', async () => {
    const cache = open();
    await cache.set('ev:1', 'one');
    const fresh = open();
    const seen: string[] = [];
    for (const event of ['hit', 'miss', 'set'] as const satisfies readonly CacheEventName[]) {
      fresh.on(event, (payload) => seen.push(`${event} ${'key' in payload ? payload.key : ''}`));
    }
    await fresh.getOrSetMany(['ev:1', 'ev:2'], (keys) => keys.map(() => 'computed'));
    expect(seen).toEqual(['hit ev:1', 'miss ev:2', 'set ev:2']);
  });

  it('writes 600 values with tags in 256-key script calls: every value, in order, byte for byte', async () => {
    const { client, calls } = counting(redis!, ['evalsha']);
    const cache = new Cache({
      redis: client,
      prefix,
      bus: false,
      lock: { enabled: false },
      operationTimeoutMs: generousDeadlineMs,
    });
    caches.push(cache);
    await cache.ready();
    calls.clear();
    const keys = Array.from({ length: 600 }, (_, index) => `chunk:${index}`);
    // NUL, a lone high byte's character, an astral one, and sizes from a few bytes to 6 KB.
    const oddValue = (key: string) => `\u0000\u00ff${key}\u{1f600}${'x'.repeat(Number(key.slice(6)) * 10)}`;
    const values = await cache.getOrSetMany(keys, (missing) => missing.map(oddValue), {
      tags: ['chunked', 'odd'],
    });
    expect(values).toEqual(keys.map(oddValue));
    expect(calls.get('evalsha')).toBe(3);
    const reader = open({ bus: false });
    expect(await reader.getMany(keys)).toEqual(keys.map(oddValue));
    expect(await reader.deleteByTag('odd')).toBe(600);
    expect(await open({ bus: false }).getMany(keys)).toEqual(keys.map(() => undefined));
  });

  it('two instances filling 300 keys in the same turn: each key keeps one value, which its writer returned', async () => {
    const a = open({ bus: false, lock: { enabled: false } });
    const b = open({ bus: false, lock: { enabled: false } });
    await Promise.all([a.ready(), b.ready()]);
    const keys = Array.from({ length: 300 }, (_, index) => `both:${index}`);
    const [fromA, fromB] = await Promise.all([
      a.getOrSetMany(keys, (missing) => missing.map((key) => `a ${key}`)),
      b.getOrSetMany(keys, (missing) => missing.map((key) => `b ${key}`)),
    ]);
    expect(fromA).toEqual(keys.map((key) => `a ${key}`));
    expect(fromB).toEqual(keys.map((key) => `b ${key}`));
    const stored = await open({ bus: false }).getMany(keys);
    for (const [index, value] of stored.entries()) expect([fromA[index], fromB[index]]).toContain(value);
    // The loser's values left its L1 (its writes lost): it reads what L2 holds.
    expect(await a.getMany(keys)).toEqual(stored);
    expect(await b.getMany(keys)).toEqual(stored);
  });
});

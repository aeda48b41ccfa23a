import { ManualClock } from '@noa/core';
import { generousDeadlineMs } from '@noa/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';
import { dropPrefix, quantile, Redis, redisUp, redisUrl, testPrefix } from './helpers.js';

describe.skipIf(!redisUp)('L1 invalidation bus', () => {
  const prefix = testPrefix('cm_bus');
  const redis = redisUp ? new Redis(redisUrl) : undefined;
  const a = new Cache({ redis, prefix, operationTimeoutMs: generousDeadlineMs });
  const b = new Cache({ redis, prefix, operationTimeoutMs: generousDeadlineMs });
  afterAll(async () => {
    await Promise.all([a.close(), b.close()]);
    if (redis) {
      await dropPrefix(prefix);
      redis.disconnect();
    }
  });

  /** Resolves when `cache` has applied the next bus message matching `predicate`. */
  const nextMessage = (cache: Cache, predicate: (keys: readonly string[]) => boolean) =>
    new Promise<void>((resolve) => {
      const stop = cache.onInvalidation((message) => {
        if (predicate(message.k)) {
          stop();
          resolve();
        }
      });
    });

  it('a set on A evicts the key from B’s L1, so B reads the new value', async () => {
    await Promise.all([a.ready(), b.ready()]);
    // The message of v1's write is applied first: a late one names the write B's L1 then holds,
    // which it keeps (bus-late-set-l1.test.ts), and would be taken here for v2's.
    const first = nextMessage(b, (keys) => keys.includes('user:1'));
    await a.set('user:1', 'v1');
    await first;
    expect(await b.get('user:1')).toBe('v1');
    expect(b.getLocal('user:1')).toBe('v1');
    const applied = nextMessage(b, (keys) => keys.includes('user:1'));
    await a.set('user:1', 'v2');
    await applied;
    expect(b.getLocal('user:1')).toBeUndefined();
    expect(await b.get('user:1')).toBe('v2');
  });

  it('empty batches send no bus message, and a key named twice is sent once', async () => {
    await Promise.all([a.ready(), b.ready()]);
    const received: [string, readonly string[]][] = [];
    // An earlier case's `set` message may still arrive: only empty ones and this case's count.
    const ours = new Set(['twice', 'once', 'marker']);
    const stop = b.onInvalidation((message) => {
      if (message.k.length === 0 || message.k.some((key) => ours.has(key)))
        received.push([message.t, message.k]);
    });
    await a.deleteMany([]);
    await a.deleteByTag([]);
    await a.expireMany([]);
    await a.expireByTag([]);
    await a.deleteMany(['twice', 'twice', 'once']);
    const marker = nextMessage(b, (keys) => keys.includes('marker'));
    await a.set('marker', 1);
    await marker;
    stop();
    expect(received).toEqual([
      ['del', ['twice', 'once']],
      ['set', ['marker']],
    ]);
  });

  it('delete, deleteByTag and clear reach the other instance', async () => {
    await a.set('d', 1, { tags: ['grp'] });
    await a.set('t', 2, { tags: ['grp'] });
    await a.namespace('ns').set('c', 3);
    expect(await b.getMany(['d', 't'])).toEqual([1, 2]);
    expect(await b.namespace('ns').get('c')).toBe(3);

    const tagApplied = nextMessage(b, (keys) => keys.includes('grp'));
    await a.deleteByTag('grp');
    await tagApplied;
    expect(b.getLocal('d')).toBeUndefined();
    expect(b.getLocal('t')).toBeUndefined();

    const clearApplied = nextMessage(b, (keys) => keys.includes(':ns:'));
    await a.namespace('ns').clear();
    await clearApplied;
    expect(b.namespace('ns').getLocal('c')).toBeUndefined();
  });

  it('l1.maxTtlMs bounds how long L1 serves an entry whose invalidation was lost', async () => {
    const clock = new ManualClock(Date.now());
    // `bus: false` stands for an instance that missed the message (Redis outage).
    const deaf = new Cache({
      redis,
      prefix,
      clock,
      bus: false,
      l1: { maxTtlMs: 5_000 },
      operationTimeoutMs: generousDeadlineMs,
    });
    const writer = new Cache({ redis, prefix, clock, operationTimeoutMs: generousDeadlineMs });
    try {
      await writer.set('capped', 'v1', { ttlMs: 60_000 });
      expect(await deaf.get('capped')).toBe('v1');
      await writer.set('capped', 'v2', { ttlMs: 60_000 });
      clock.advance(4_999);
      expect(deaf.getLocal('capped')).toBe('v1');
      clock.advance(1);
      expect(deaf.getLocal('capped')).toBeUndefined();
      expect(await deaf.get('capped')).toBe('v2');
    } finally {
      await Promise.all([deaf.close(), writer.close()]);
    }
  });

  it('measures invalidation latency across instances (p99 reported, not asserted)', async () => {
    const latencies: number[] = [];
    for (let round = 0; round < 200; round += 1) {
      const key = `lat:${round % 10}`;
      const applied = nextMessage(b, (keys) => keys.includes(key));
      const started = performance.now();
      await a.set(key, round);
      await applied;
      latencies.push(performance.now() - started);
    }
    const p50 = quantile(latencies, 0.5);
    const p99 = quantile(latencies, 0.99);
    console.log(
      `[cache-manager] bus invalidation latency (set on A → applied on B): p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms`,
    );
    expect(latencies).toHaveLength(200);
  });
});

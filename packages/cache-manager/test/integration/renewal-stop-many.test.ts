import { delay } from '@noa/core';
import { afterAll, describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';
import { observingEvalsha } from './evalsha-observer.js';
import { dropPrefix, Redis, redisUp, redisUrl, testPrefix } from './helpers.js';

/**
 * A `getOrSetMany` run over many values extends them as it starts, and renews their extension,
 * in batches of 256 script calls, one batch after another (see long-run-extension.test.ts).
 * When the run settles during the first extension or a renewal, it must not go on sending its
 * later batches: the run's writes and its callers waited for every one of them (a round trip
 * each, an operation deadline each on a stalled Redis; 39 round trips after a short run over
 * 10,000 values), for values the writes replace at once. The batch in flight is awaited, the
 * rest is not sent.
 */
const prefix = testPrefix('cm_renewal_stop_many');
const caches: Cache[] = [];
const clients: Redis[] = [];
afterAll(async () => {
  await Promise.all(caches.map((cache) => cache.close()));
  for (const client of clients) client.disconnect();
  await dropPrefix(prefix);
});

/** `client`, counting the calls of the first script sent on a value key (the run's extension). */
function countingExtensions(client: Redis): {
  client: Redis;
  sent: () => number;
  onSend: (call: () => void) => void;
} {
  let sha: string | undefined;
  let sent = 0;
  let listener: (() => void) | undefined;
  const proxy = observingEvalsha(client, (called, first) => {
    if (!first.includes('v:many-')) return;
    sha ??= called;
    if (called === sha) {
      sent += 1;
      listener?.();
    }
  });
  return {
    client: proxy,
    sent: () => sent,
    onSend: (call) => {
      listener = call;
    },
  };
}

/**
 * 1,000 values written by cache B with a 50 ms TTL and a minute's grace, read by cache A through
 * a client counting its extension calls: A's `getOrSetMany` over them replaces values in grace,
 * so it extends all of them, then renews in 256-call batches. A is the caller's to close.
 */
async function valuesInGrace(name: string) {
  const count = 1_000;
  const keys = Array.from({ length: count }, (_, index) => `many-${name}${index}`);
  const raw = new Redis(redisUrl);
  const other = new Redis(redisUrl);
  clients.push(raw, other);
  const counted = countingExtensions(raw);
  const options = { prefix, operationTimeoutMs: 2_000, lock: { leaseMs: 300 } };
  const a = new Cache({ redis: counted.client, bus: false, ...options });
  const b = new Cache({ redis: other, bus: false, ...options });
  caches.push(b);
  await Promise.all([a.ready(), b.ready()]);
  await b.setMany(keys.map((key) => ({ key, value: 'first', ttlMs: 50, graceMs: 60_000 })));
  await delay(100);
  return { count, keys, counted, options, other, a, b };
}

/** Resolves once `counted` has sent more than `calls` extension script calls. */
function sentMoreThan(counted: ReturnType<typeof countingExtensions>, calls: number): Promise<void> {
  return new Promise((resolve) => {
    const check = () => {
      if (counted.sent() > calls) resolve();
    };
    counted.onSend(check);
    check();
  });
}

describe.skipIf(!redisUp)('a getOrSetMany run that settles during an extension', () => {
  it('sends none of the renewal’s later batches', async () => {
    const { count, keys, counted, options, other, a } = await valuesInGrace('');
    caches.push(a);
    let atSettle = 0;
    const factoryMany = async (asked: readonly string[]) => {
      // Settles as the first renewal starts (its first script call sent).
      await sentMoreThan(counted, count);
      atSettle = counted.sent();
      return asked.map(() => 'refreshed');
    };
    const values = await a.getOrSetMany(keys, factoryMany, { ttlMs: 60_000 });
    expect(values.every((value) => value === 'refreshed')).toBe(true);
    // The first extension sent one call per key, then the renewal began.
    expect(atSettle).toBeGreaterThan(count);
    // At most the rest of the batch in flight went out after the run settled.
    expect(counted.sent() - atSettle).toBeLessThan(256);
    expect(counted.sent()).toBeLessThan(count + 256 + 1);
    const c = new Cache({ redis: other, bus: false, ...options });
    caches.push(c);
    expect(await c.get(keys.at(-1)!)).toBe('refreshed');
  });
  it('a run that settles during its first extension sends none of its later batches, and is cached', async () => {
    const { count, keys, counted, options, other, a } = await valuesInGrace('first-');
    caches.push(a);
    let atSettle = 0;
    const factoryMany = async (asked: readonly string[]) => {
      // Settles as the first extension starts (its first script call sent).
      await sentMoreThan(counted, 0);
      atSettle = counted.sent();
      return asked.map(() => 'refreshed');
    };
    const values = await a.getOrSetMany(keys, factoryMany, { ttlMs: 60_000 });
    expect(values.every((value) => value === 'refreshed')).toBe(true);
    // At most the rest of the batch in flight went out after the run settled, not the 744
    // calls of the three batches behind it: the writes replace those values at once.
    expect(counted.sent() - atSettle).toBeLessThan(256);
    expect(counted.sent()).toBeLessThanOrEqual(256);
    const c = new Cache({ redis: other, bus: false, ...options });
    caches.push(c);
    expect(await c.getMany(keys)).toEqual(Array(count).fill('refreshed'));
  });

  it('sends none of the renewal’s later batches once the cache closes', async () => {
    const { count, counted, keys, a } = await valuesInGrace('closed-');
    let atClose = 0;
    const closed = new Promise<void>((resolve) => {
      counted.onSend(() => {
        if (counted.sent() !== count + 1) return;
        // The first renewal's first call: the cache closes under the run, which never settles.
        void a.close().then(resolve);
      });
    });
    void a.getOrSetMany(keys, () => new Promise<string[]>(() => {}), { ttlMs: 60_000 }).catch(() => {});
    await closed;
    atClose = counted.sent();
    await delay(500);
    expect(atClose).toBeGreaterThan(count);
    // At most the batch in flight as it closed.
    expect(counted.sent()).toBeLessThanOrEqual(count + 256);
  });
  it('sends none of the renewal’s later batches for keys superseded meanwhile', async () => {
    const { count, counted, keys, a, b } = await valuesInGrace('deleted-');
    caches.push(a);
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const deleted = new Promise<void>((resolve) => {
      counted.onSend(() => {
        if (counted.sent() !== count + 1) return;
        // The first renewal's first call: every key is deleted here, superseding the run.
        void a.deleteMany(keys).then(() => resolve());
      });
    });
    const served = a.getOrSetMany(
      keys,
      async (asked) => {
        await finished;
        return asked.map(() => 'late');
      },
      { ttlMs: 60_000 },
    );
    await deleted;
    await delay(500);
    // At most the batch in flight as the keys were deleted.
    expect(counted.sent()).toBeLessThanOrEqual(count + 256);
    finish();
    expect((await served).every((value) => value === 'late')).toBe(true);
    // Superseded: not cached.
    expect(await b.get(keys[0]!)).toBeUndefined();
  });
});

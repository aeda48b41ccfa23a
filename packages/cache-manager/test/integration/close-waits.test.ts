import { delay } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { Cache, ClosedError } from '../../src/index.js';
import { hungSource, settledWithin } from '../hung-factory.js';
import { Redis, redisUp, redisUrl, sharedRedisCaches } from './helpers.js';

/**
 * The README's Closing section: `close()` waits for background work (a factory run whose
 * callers left at their soft timeout, an early refresh, a `writeMode: 'background'` write) so
 * that its value reaches L2, at most `waitMs` (5 s by default), then aborts `ctx.signal` of the
 * factory runs still in progress (reason: a `ClosedError`) and resolves even if that work never
 * settles.
 */

/** Holds 'old' for `key` in L2, already expired and in its grace period: a miss serves it stale. */
async function staleInGrace(cache: Cache, key: string): Promise<void> {
  await cache.ready();
  await cache.set(key, 'old', { ttlMs: 1, graceMs: 60_000 });
  await delay(5);
}

describe.skipIf(!redisUp)('close() and background work', () => {
  const { prefix, open } = sharedRedisCaches('cm_close_waits');

  /** A cache on its own client, closed by the test itself. */
  function own(): { cache: Cache; client: Redis } {
    const client = new Redis(redisUrl);
    return { cache: new Cache({ redis: client, prefix }), client };
  }

  it('waits for a factory run its caller left at the soft timeout: its value is in L2 once close() resolves', async () => {
    const { cache, client } = own();
    try {
      await staleInGrace(cache, 'left');
      const served = await cache.getOrSet(
        'left',
        async () => {
          await delay(200);
          return 'new';
        },
        { softTimeoutMs: 10, ttlMs: 60_000 },
      );
      expect(served).toBe('old');
      await cache.close();
    } finally {
      client.disconnect();
    }
    const reader = await open();
    expect(await reader.get('left')).toBe('new');
  });

  it("waits for a writeMode 'background' write: in L2 once close() resolves", async () => {
    const client = new Redis(redisUrl);
    const cache = new Cache({ redis: client, prefix, writeMode: 'background' });
    try {
      await cache.ready();
      await cache.setMany(Array.from({ length: 2_000 }, (_, index) => ({ key: `bg${index}`, value: index })));
      await cache.close();
    } finally {
      client.disconnect();
    }
    const reader = await open();
    expect(await reader.get('bg1999')).toBe(1999);
  });

  it('resolves while a factory run its caller left never settles (the wait is bounded)', {
    timeout: 20_000,
  }, async () => {
    const { cache, client } = own();
    try {
      await staleInGrace(cache, 'hung');
      expect(await cache.getOrSet('hung', () => new Promise<string>(() => {}), { softTimeoutMs: 10 })).toBe(
        'old',
      );
      await expect(cache.close()).resolves.toBeUndefined();
      await expect(cache.get('hung')).rejects.toMatchObject({ code: 'NOA_CLOSED' });
    } finally {
      client.disconnect();
    }
  });

  it('close({ waitMs }) aborts ctx.signal of a hung run it gave up on, with a ClosedError; its lease is freed for another instance', {
    timeout: 20_000,
  }, async () => {
    const { cache, client } = own();
    const { load, reasons } = hungSource();
    try {
      await staleInGrace(cache, 'hung-signal');
      // Its caller leaves at the soft timeout: the run, holding the key's lease, is close()'s to wait for.
      expect(await cache.getOrSet('hung-signal', ({ signal }) => load(signal), { softTimeoutMs: 10 })).toBe(
        'old',
      );
      // Far below the 5 s default: this close waited 100 ms, not 5 s.
      expect(await settledWithin(cache.close({ waitMs: 100 }), 4_000)).toBe('closed');
      expect(reasons).toHaveLength(1);
      expect(reasons[0]).toBeInstanceOf(ClosedError);
      expect(reasons[0]).toMatchObject({ code: 'NOA_CLOSED' });
      // No failure mark, and the lease freed: another instance computes the key at once rather
      // than wait for the lease (lockTimeoutMs far below leaseMs) or serve its stale value.
      const other = await open();
      expect(
        await other.getOrSet('hung-signal', () => 'fresh', { lockTimeoutMs: 2_000, softTimeoutMs: 3_000 }),
      ).toBe('fresh');
    } finally {
      client.disconnect();
    }
  });

  it('close({ waitMs: 0 }) aborts at once, even a run that would have finished', {
    timeout: 20_000,
  }, async () => {
    const { cache, client } = own();
    let signal: AbortSignal | undefined;
    try {
      await staleInGrace(cache, 'zero');
      const served = await cache.getOrSet(
        'zero',
        async (context) => {
          signal = context.signal;
          await delay(300);
          return 'new';
        },
        { softTimeoutMs: 10, ttlMs: 60_000 },
      );
      expect(served).toBe('old');
      await cache.close({ waitMs: 0 });
      expect(signal?.aborted).toBe(true);
      expect(signal?.reason).toBeInstanceOf(ClosedError);
    } finally {
      client.disconnect();
    }
  });

  it('the default close() waits for a slow early refresh that finishes: its value is in L2, its signal never aborted', {
    timeout: 20_000,
  }, async () => {
    const { cache, client } = own();
    let signal: AbortSignal | undefined;
    try {
      await cache.ready();
      await cache.set('ahead', 'old', { ttlMs: 60_000 });
      // Due for refresh-ahead on this hit: the refresh runs in the background, nobody waits for it.
      const served = await cache.getOrSet(
        'ahead',
        async (context) => {
          signal = context.signal;
          await delay(300);
          return 'refreshed';
        },
        { refreshThresholdMs: 120_000, ttlMs: 60_000 },
      );
      expect(served).toBe('old');
      await cache.close();
      expect(signal).toBeDefined();
      expect(signal?.aborted).toBe(false);
    } finally {
      client.disconnect();
    }
    const reader = await open();
    expect(await reader.get('ahead')).toBe('refreshed');
  });

  it('close() validates its options: ConfigError naming waitMs', async () => {
    const { cache, client } = own();
    try {
      await expect(cache.close({ waitMs: -1 })).rejects.toMatchObject({ code: 'NOA_CONFIG_INVALID' });
      await expect(cache.close({ waitMs: 1.5 })).rejects.toThrow(/waitMs/);
      // A bad call closes nothing; a good one does, and a second one resolves at once.
      expect(await cache.get('x')).toBeUndefined();
      await cache.close({ waitMs: 0 });
      await expect(cache.close()).resolves.toBeUndefined();
    } finally {
      client.disconnect();
    }
  });
});

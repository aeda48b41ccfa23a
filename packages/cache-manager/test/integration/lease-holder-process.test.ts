import { generousDeadlineMs } from '@noa/testkit';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { Cache, LockTimeoutError } from '../../src/index.js';
import { type FixtureProcess, spawnFixture } from './fixture-process.js';
import { dropPrefix, Redis, redisUp, redisUrl, testPrefix } from './helpers.js';
import { total } from './registry-counters.js';

type Holder = FixtureProcess;

function startHolder(prefix: string, key: string, leaseMs: number): Holder {
  return spawnFixture('lease-holder-worker.ts', [redisUrl, prefix, key, String(leaseMs)], 'holder');
}

describe.skipIf(!redisUp)('a lease holder in another process', () => {
  const prefix = testPrefix('cm_holder_proc');
  const redis = redisUp ? new Redis(redisUrl) : undefined;
  const caches: Cache[] = [];
  const holders: Holder[] = [];
  const instance = async (options: ConstructorParameters<typeof Cache>[0] = {}) => {
    const cache = new Cache({ redis, prefix, operationTimeoutMs: generousDeadlineMs, ...options });
    caches.push(cache);
    await cache.ready();
    return cache;
  };
  const holding = async (key: string, leaseMs: number) => {
    const holder = startHolder(prefix, key, leaseMs);
    holders.push(holder);
    const running = await holder.next('running');
    // Its lease is in Redis while its factory runs (read by the holder itself as the factory starts).
    expect(running.leaseHeld).toBe(1);
    return holder;
  };

  afterAll(async () => {
    for (const { child } of holders) child.kill('SIGKILL');
    await Promise.all(holders.map(({ exited }) => exited));
    await Promise.all(caches.map((cache) => cache.close()));
    if (redis) {
      await dropPrefix(prefix);
      redis.disconnect();
    }
  });

  it('SIGKILLed mid-factory: a waiter takes the lease once it expires and computes, once', async () => {
    const registry = new Registry();
    const waiter = await instance({ registry, lock: { leaseMs: 1_500, timeoutMs: 10_000, pollMs: 50 } });
    const holder = await holding('killed', 1_500);
    let runs = 0;
    const waiting = waiter.getOrSet('killed', () => {
      runs += 1;
      return { by: 'waiter' };
    });
    holder.child.kill('SIGKILL');
    await holder.exited;
    expect(await waiting).toEqual({ by: 'waiter' });
    expect(runs).toBe(1);
    expect(await total(registry, 'noa_cache_manager_lock_waits_total', { result: 'acquired' })).toBe(1);
    // Stored for every instance: another one reads it and runs nothing.
    const other = await instance();
    expect(await other.getOrSet('killed', () => ({ by: 'other' }))).toEqual({ by: 'waiter' });
  });

  it('SIGKILLed mid-factory with lock.timeoutMs under leaseMs: waiters give up with LockTimeoutError, or serve their value in grace', async () => {
    const waiter = await instance({ lock: { leaseMs: 5_000, timeoutMs: 600, pollMs: 50 } });
    await waiter.set('killed-stale', { by: 'before' }, { ttlMs: 1, graceMs: 60_000 });
    await redis!.del(`${prefix}__lease:killed-stale`);
    const holder = await holding('killed-bare', 5_000);
    const holderStale = await holding('killed-stale', 5_000);
    holder.child.kill('SIGKILL');
    holderStale.child.kill('SIGKILL');
    let runs = 0;
    const factory = () => {
      runs += 1;
      return { by: 'waiter' };
    };
    await expect(waiter.getOrSet('killed-bare', factory)).rejects.toBeInstanceOf(LockTimeoutError);
    expect(await waiter.getOrSet('killed-stale', factory)).toEqual({ by: 'before' });
    expect(runs).toBe(0);
  });

  it('a holder whose factory outlives its lease: its late value does not replace the taker’s in L2', async () => {
    const waiter = await instance({ lock: { leaseMs: 800, timeoutMs: 10_000, pollMs: 50 } });
    const holder = await holding('outlived', 800);
    expect(await waiter.getOrSet('outlived', () => ({ by: 'waiter' }))).toEqual({ by: 'waiter' });
    holder.child.stdin.write('finish\n');
    // The late holder's own caller gets its value.
    expect((await holder.next('done')).value).toEqual({ by: 'child' });
    await holder.exited;
    const other = await instance();
    expect(await other.get('outlived')).toEqual({ by: 'waiter' });
    expect(await waiter.get('outlived')).toEqual({ by: 'waiter' });
  });
});

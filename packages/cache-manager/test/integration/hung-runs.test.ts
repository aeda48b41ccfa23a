import { delay } from '@noa/core';
import { liveObjects } from '@noa/testkit';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { FactoryRunContext } from '../../src/factory-context.js';
import { FactoryTimeoutError } from '../../src/index.js';
import { hungSource } from '../hung-factory.js';
import { eventually, redisUp, sharedRedisCaches } from './helpers.js';

// Factory runs that never settle on a memory+Redis cache (README "Runs that never settle",
// docs/get-or-set.md "Runs that never settle"): each call past the lease takes the key's lease
// again and starts another run; the old ones are given up past `max(lock.leaseMs,
// hardTimeoutMs)`, their ctx.signal aborted, their memory dropped, their late values unwritten.

const leaseMs = 60;
const deaf = () => new Promise<string>(() => {});

describe.skipIf(!redisUp)('a factory that never settles (memory + Redis)', () => {
  const { prefix, open } = sharedRedisCaches('cm_hung_runs');

  it('same key, one hung run per lease: the live runs stay bounded over 25 lease periods', async () => {
    const cache = await open({ lock: { leaseMs } });
    // Counted: run contexts (held with the running map's entry) and signal controllers (kept
    // by close()'s list even once a factory that never settles dropped its context).
    const before = liveObjects(FactoryRunContext);
    const controllers = liveObjects(AbortController);
    for (let period = 0; period < 25; period += 1) {
      await expect(cache.getOrSet('same', deaf, { hardTimeoutMs: 5 })).rejects.toBeInstanceOf(
        FactoryTimeoutError,
      );
      await delay(leaseMs + 10);
    }
    await delay(3 * leaseMs);
    const live = liveObjects(FactoryRunContext) - before;
    const liveControllers = liveObjects(AbortController) - controllers;
    console.log('hung runs (Redis), same key, live after 25 runs:', { live, liveControllers });
    // Before the change: a controller per run, for as long as the process lived.
    expect(live).toBeLessThanOrEqual(3);
    expect(liveControllers).toBeLessThanOrEqual(3);
  });

  it("aborts ctx.signal with FactoryTimeoutError (reason 'abandoned'), frees the lease, counts the run", async () => {
    const registry = new Registry();
    const cache = await open({ prefix: `${prefix}signal:`, lock: { leaseMs }, registry });
    const source = hungSource();
    await expect(
      cache.getOrSet('k', ({ signal }) => source.load(signal), { hardTimeoutMs: 5 }),
    ).rejects.toBeInstanceOf(FactoryTimeoutError);
    expect(await eventually(() => source.reasons.length === 1, 4_000)).toBe(true);
    expect(source.reasons[0]).toMatchObject({ code: 'NOA_CACHE_FACTORY_TIMEOUT', reason: 'abandoned' });
    const metric = await registry.getSingleMetric('noa_cache_manager_factory_runs_abandoned_total')?.get();
    expect(metric?.values[0]?.value).toBe(1);
    // The next call computes under a lease of its own.
    expect(await cache.getOrSet('k', async () => 'fresh')).toBe('fresh');
  });

  it('the late value of a given-up run is written to neither tier', async () => {
    const cache = await open({ prefix: `${prefix}late:`, lock: { leaseMs } });
    let finished = false;
    const late = async () => {
      await delay(6 * leaseMs);
      finished = true;
      return 'late';
    };
    await expect(cache.getOrSet('k', late, { hardTimeoutMs: 5 })).rejects.toBeInstanceOf(FactoryTimeoutError);
    expect(await eventually(() => finished, 4_000)).toBe(true);
    await delay(20);
    expect(await cache.get('k')).toBeUndefined();
    const other = await open({ prefix: `${prefix}late:`, bus: false, l1: false });
    expect(await other.get('k')).toBeUndefined();
  });
});

import { ClosedError, delay } from '@noa/core';
import { liveObjects, recordingLogger } from '@noa/testkit';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { FactoryRunContext } from '../src/factory-context.js';
import { Cache, type CacheOptions, FactoryTimeoutError } from '../src/index.js';
import { hungSource } from './hung-factory.js';

/**
 * Factory runs that never settle (a fetch with no timeout of its own against a hung source), on
 * a memory-only cache (README and docs/get-or-set.md "Runs that never settle"):
 * given up past `max(lock.leaseMs, hardTimeoutMs)` once replaced by another run of the key or
 * awaited by nobody. Memory is counted in live objects (`v8.queryObjects`), not heap bytes.
 */

const leaseMs = 20;
const caches: Cache[] = [];
function make(options: CacheOptions = {}): Cache {
  const cache = new Cache({ lock: { leaseMs }, ...options });
  caches.push(cache);
  return cache;
}
afterEach(async () => {
  await Promise.all(caches.splice(0).map((cache) => cache.close({ waitMs: 0 })));
});

/** Never settles and ignores its signal: only the give-up ends its run. */
const deaf = () => new Promise<string>(() => {});

/** Polls `check` every 5 ms until true or `boundMs` passed (a generous bound, not a timing). */
async function eventually(check: () => boolean, boundMs = 4_000): Promise<boolean> {
  const until = Date.now() + boundMs;
  while (!check()) {
    if (Date.now() > until) return false;
    await delay(5);
  }
  return true;
}

describe('a factory that never settles (memory-only cache)', () => {
  it('same key, one hung run per lease: the live runs stay bounded over 40 lease periods', async () => {
    const cache = make();
    // A factory that never settles drops its context with it; its signal's controller was kept.
    const before = liveObjects(AbortController);
    for (let period = 0; period < 40; period += 1) {
      // The caller leaves at its hard timeout; the next call, past the lease, starts another run.
      await expect(cache.getOrSet('k', deaf, { hardTimeoutMs: 5 })).rejects.toBeInstanceOf(
        FactoryTimeoutError,
      );
      await delay(leaseMs + 5);
    }
    await delay(3 * leaseMs);
    const live = liveObjects(AbortController) - before;
    console.log('hung runs, same key, live signal controllers after 40 runs:', live);
    // Before the change: 40, one per run, for as long as the process lived.
    expect(live).toBeLessThanOrEqual(3);
  });

  it('distinct keys: the runs of 300 hung keys are all dropped', async () => {
    const cache = make();
    const before = liveObjects(FactoryRunContext);
    const controllers = liveObjects(AbortController);
    await Promise.all(
      Array.from({ length: 300 }, (_, index) =>
        cache.getOrSet(`k${index}`, deaf, { hardTimeoutMs: 5 }).catch(() => undefined),
      ),
    );
    await delay(4 * leaseMs);
    const live = liveObjects(FactoryRunContext) - before;
    const liveControllers = liveObjects(AbortController) - controllers;
    console.log('hung runs, distinct keys, live after 300 runs:', { live, liveControllers });
    expect(live).toBeLessThanOrEqual(3);
    expect(liveControllers).toBeLessThanOrEqual(3);
  });

  it("a run its caller left gets its ctx.signal aborted with FactoryTimeoutError (reason 'abandoned') past the lease", async () => {
    const logger = recordingLogger();
    const cache = make({ logger });
    const source = hungSource();
    await cache.set('k', 'old', { ttlMs: 1, graceMs: 60_000 });
    await delay(5);
    expect(await cache.getOrSet('k', ({ signal }) => source.load(signal), { softTimeoutMs: 5 })).toBe('old');
    expect(source.reasons).toEqual([]);
    expect(await eventually(() => source.reasons.length === 1)).toBe(true);
    const reason = source.reasons[0] as FactoryTimeoutError;
    expect(reason).toBeInstanceOf(FactoryTimeoutError);
    expect(reason.reason).toBe('abandoned');
    expect(reason.code).toBe('NOA_CACHE_FACTORY_TIMEOUT');
    expect(
      logger.messages('warn').filter((message) => message.startsWith('a factory run was abandoned')),
    ).toHaveLength(1);
    // No "factory failed after its callers stopped waiting": the source did not fail.
    expect(logger.messages('warn').filter((message) => message.includes('after its callers'))).toEqual([]);
  });

  it('a caller with no timeout awaiting a run another replaced gets the abort as FactoryTimeoutError', async () => {
    const cache = make();
    const source = hungSource();
    const waiting = cache.getOrSet('k', ({ signal }) => source.load(signal)).catch((error: unknown) => error);
    await delay(5);
    // A delete supersedes the run; the next call starts another, which replaces it.
    await cache.delete('k');
    const next = cache.getOrSet('k', deaf, { hardTimeoutMs: 5 }).catch(() => undefined);
    // Bounded, so that a run never given up fails the test rather than hang it.
    const error = (await Promise.race([
      waiting,
      delay(4_000).then(() => 'still waiting'),
    ])) as FactoryTimeoutError;
    expect(error).toBeInstanceOf(FactoryTimeoutError);
    expect(error.reason).toBe('abandoned');
    expect(source.reasons).toEqual([error]);
    await next;
  });

  it('a run a caller with no timeout awaits is not given up while not replaced: a slow factory still caches', async () => {
    const cache = make();
    let signal: AbortSignal | undefined;
    const value = await cache.getOrSet('k', async (context) => {
      signal = context.signal;
      await delay(6 * leaseMs);
      return 'slow';
    });
    expect(value).toBe('slow');
    expect(signal?.aborted).toBe(false);
    expect(await cache.get('k')).toBe('slow');
  });

  it('the late value of a given-up run is not written', async () => {
    const cache = make();
    let finished = false;
    const late = async () => {
      await delay(8 * leaseMs);
      finished = true;
      return 'late';
    };
    await expect(cache.getOrSet('k', late, { hardTimeoutMs: 5 })).rejects.toBeInstanceOf(FactoryTimeoutError);
    expect(await eventually(() => finished)).toBe(true);
    await delay(5);
    expect(await cache.get('k')).toBeUndefined();
  });

  it('counts each given-up run in noa_cache_manager_factory_runs_abandoned_total', async () => {
    const registry = new Registry();
    const cache = make({ registry });
    const series = async () =>
      (await registry.getSingleMetric('noa_cache_manager_factory_runs_abandoned_total')?.get())?.values ?? [];
    expect(await series()).toEqual([expect.objectContaining({ value: 0, labels: { cache: 'cache' } })]);
    await Promise.all(
      ['a', 'b', 'c'].map((key) => cache.getOrSet(key, deaf, { hardTimeoutMs: 5 }).catch(() => undefined)),
    );
    await delay(4 * leaseMs);
    expect(await series()).toEqual([expect.objectContaining({ value: 3, labels: { cache: 'cache' } })]);
  });

  it('close() is unchanged: a run within its lease is aborted with a ClosedError when close() stops waiting', async () => {
    const cache = make({ lock: { leaseMs: 60_000 } });
    const source = hungSource();
    await expect(
      cache.getOrSet('k', ({ signal }) => source.load(signal), { hardTimeoutMs: 5 }),
    ).rejects.toBeInstanceOf(FactoryTimeoutError);
    await cache.close({ waitMs: 20 });
    expect(source.reasons).toHaveLength(1);
    expect(source.reasons[0]).toBeInstanceOf(ClosedError);
  });
});

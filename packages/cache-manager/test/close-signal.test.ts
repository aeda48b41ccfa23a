import { delay } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { Cache, ClosedError, type FactoryContext } from '../src/index.js';
import { hungSource, settledWithin } from './hung-factory.js';

/**
 * `ctx.signal` on a memory-only cache (README "Closing"): aborted with a `ClosedError` when
 * `close()` stops waiting (after `waitMs`, at once with 0), never before; every kind of factory
 * run gets one (getOrSet, wrap's `this`, getOrSetMany's second argument, warm's loader).
 */

describe('ctx.signal (memory-only cache)', () => {
  it('a hung run its caller left is aborted with a ClosedError once close({ waitMs }) stops waiting', async () => {
    const cache = new Cache();
    const source = hungSource();
    await cache.set('k', 'old', { ttlMs: 1, graceMs: 60_000 });
    await delay(5);
    expect(await cache.getOrSet('k', ({ signal }) => source.load(signal), { softTimeoutMs: 10 })).toBe('old');
    expect(source.reasons).toEqual([]);
    expect(await settledWithin(cache.close({ waitMs: 100 }), 4_000)).toBe('closed');
    expect(source.reasons).toHaveLength(1);
    expect(source.reasons[0]).toBeInstanceOf(ClosedError);
    expect(source.reasons[0]).toMatchObject({ code: 'NOA_CLOSED' });
  });

  it('a caller still awaiting a run close() gave up on gets FactoryError with the ClosedError as cause', async () => {
    const cache = new Cache();
    const source = hungSource();
    const waiting = cache.getOrSet('k', ({ signal }) => source.load(signal));
    const outcome = waiting.catch((error: unknown) => error);
    await cache.close({ waitMs: 0 });
    const error = (await outcome) as { code: string; cause: unknown };
    expect(error.code).toBe('NOA_CACHE_FACTORY_FAILED');
    expect(error.cause).toBeInstanceOf(ClosedError);
  });

  it('a run that finishes within waitMs is not aborted, and close() waited for it', async () => {
    const cache = new Cache();
    let signal: AbortSignal | undefined;
    let finished = false;
    await cache.set('k', 'old', { ttlMs: 1, graceMs: 60_000 });
    await delay(5);
    const served = await cache.getOrSet(
      'k',
      async (context) => {
        signal = context.signal;
        await delay(50);
        finished = true;
        return 'new';
      },
      { softTimeoutMs: 5 },
    );
    expect(served).toBe('old');
    await cache.close({ waitMs: 5_000 });
    expect(finished).toBe(true);
    expect(signal?.aborted).toBe(false);
  });

  it('with no background work left, close() aborts nothing: a run a caller awaits goes on for it', async () => {
    const cache = new Cache();
    let signal: AbortSignal | undefined;
    const waiting = cache.getOrSet('k', async (context) => {
      signal = context.signal;
      await delay(50);
      return 'computed';
    });
    await cache.close({ waitMs: 1_000 });
    expect(signal?.aborted).toBe(false);
    expect(await waiting).toBe('computed');
  });

  it('wrap gives the signal as this.signal, getOrSetMany as its second argument, warm to its loader', async () => {
    const cache = new Cache();
    const seen: AbortSignal[] = [];
    const wrapped = cache.wrap(
      function (this: FactoryContext<string>, id: string) {
        seen.push(this.signal);
        return id;
      },
      (id) => `w:${id}`,
    );
    expect(await wrapped('1')).toBe('1');
    expect(
      await cache.getOrSetMany(['m:1', 'm:2'], (keys, { signal }) => {
        seen.push(signal);
        return keys.map((key) => key.toUpperCase());
      }),
    ).toEqual(['M:1', 'M:2']);
    const report = await cache.warm(['a'], (key, { signal }) => {
      seen.push(signal);
      return key;
    });
    expect(report.loaded).toBe(1);
    expect(seen).toHaveLength(3);
    for (const signal of seen) {
      expect(signal).toBeInstanceOf(AbortSignal);
      expect(signal.aborted).toBe(false);
    }
    // One controller per run: a signal a finished run saw is not aborted by a later close.
    await cache.close({ waitMs: 0 });
    for (const signal of seen) expect(signal.aborted).toBe(false);
  });

  it('a getOrSetMany run close() gives up on is aborted; its keys reject with FactoryError', async () => {
    const cache = new Cache();
    const source = hungSource();
    const outcome = cache
      .getOrSetMany(['a', 'b'], (_keys, { signal }) => source.load(signal))
      .catch((error: unknown) => error);
    await delay(5);
    await cache.close({ waitMs: 0 });
    expect(source.reasons[0]).toBeInstanceOf(ClosedError);
    expect(await outcome).toMatchObject({ code: 'NOA_CACHE_FACTORY_FAILED' });
  });

  it('close() validates waitMs (ConfigError naming it) and stays idempotent', async () => {
    const cache = new Cache();
    await expect(cache.close({ waitMs: -1 })).rejects.toThrow(/waitMs/);
    await expect(cache.close({ waitMs: '5' as unknown as number })).rejects.toMatchObject({
      code: 'NOA_CONFIG_INVALID',
    });
    await expect(cache.close({ waitMs: 0, extra: 1 } as never)).rejects.toMatchObject({
      code: 'NOA_CONFIG_INVALID',
    });
    await cache.close();
    await expect(cache.close({ waitMs: 0 })).resolves.toBeUndefined();
    await expect(cache.get('k')).rejects.toBeInstanceOf(ClosedError);
  });
});

import { delay, ManualClock } from '@noa/core';
import { generousDeadlineMs } from '@noa/testkit';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { Cache, FactoryTimeoutError, LockTimeoutError } from '../../src/index.js';
import { counting, dropPrefix, Redis, redisUp, redisUrl, testPrefix } from './helpers.js';

describe.skipIf(!redisUp)('stampede protection across instances (one process, separate caches)', () => {
  const prefix = testPrefix('cm_stampede');
  const redis = redisUp ? new Redis(redisUrl) : undefined;
  const caches: Cache[] = [];
  const instances = async (count: number, options: ConstructorParameters<typeof Cache>[0] = {}) => {
    const made = Array.from(
      { length: count },
      () => new Cache({ redis, prefix, operationTimeoutMs: generousDeadlineMs, ...options }),
    );
    caches.push(...made);
    await Promise.all(made.map((cache) => cache.ready()));
    return made;
  };
  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
    if (redis) {
      await dropPrefix(prefix);
      redis.disconnect();
    }
  });

  it('4 instances × 100 concurrent misses run a 200 ms factory once', async () => {
    // 400 calls at once on a loaded machine can outlast the default 500 ms deadline: a caller
    // whose lease call timed out runs the factory itself (by design), a second run.
    const group = await instances(4, { operationTimeoutMs: 5_000 });
    let runs = 0;
    const factory = async () => {
      runs += 1;
      await delay(200);
      return { answer: 42 };
    };
    const results = await Promise.all(
      group.flatMap((cache) =>
        Array.from({ length: 100 }, () => cache.getOrSet('cold', factory, { ttlMs: 60_000 })),
      ),
    );
    expect(runs).toBe(1);
    expect(results.every((result) => result.answer === 42)).toBe(true);
  });

  it('does not recompute when another instance finishes between our L2 miss and our lease', async () => {
    const [first] = await instances(1);
    // The second instance's first L2 read is answered (a miss) only after the first instance
    // has computed, written and released the lease: the window of a check-then-act race.
    let openGate!: () => void;
    const gate = new Promise<void>((resolve) => (openGate = resolve));
    let delayed = false;
    const slowReads = new Proxy(redis!, {
      get(target, property) {
        if (property === 'mgetBuffer' && !delayed) {
          delayed = true;
          return async (...keys: string[]) => {
            const reply = await target.mgetBuffer(...keys);
            await gate;
            return reply;
          };
        }
        const value = Reflect.get(target, property);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const second = new Cache({ redis: slowReads, prefix, operationTimeoutMs: generousDeadlineMs });
    caches.push(second);
    await second.ready();
    let runs = 0;
    const factory = async () => {
      runs += 1;
      await delay(20);
      return `run ${runs}`;
    };
    const late = second.getOrSet('race', factory);
    await delay(20);
    expect(await first!.getOrSet('race', factory)).toBe('run 1');
    openGate();
    expect(await late).toBe('run 1');
    expect(runs).toBe(1);
  });

  it('when the lease holder fails, a waiter takes over and computes', async () => {
    const [first, second] = await instances(2);
    let attempt = 0;
    const factory = async () => {
      attempt += 1;
      const mine = attempt;
      await delay(50);
      if (mine === 1) throw new Error('first attempt fails');
      return 'second attempt';
    };
    const [a, b] = await Promise.allSettled([
      first!.getOrSet('flaky', factory),
      delay(10).then(() => second!.getOrSet('flaky', factory)),
    ]);
    expect(a.status).toBe('rejected');
    expect(b).toEqual({ status: 'fulfilled', value: 'second attempt' });
    expect(attempt).toBe(2);
  });

  /**
   * Instances whose lease attempts are counted, polling Redis only once a minute so that only
   * the bus can end their wait, and `untilWaiting(n)`: resolves once they tried `n` leases.
   */
  const countedWaiters = async (count: number, options: ConstructorParameters<typeof Cache>[0] = {}) => {
    const { client, calls } = counting(redis!, ['set']);
    const made = await instances(count, {
      redis: client,
      lock: { pollMs: 60_000, timeoutMs: 20_000 },
      ...options,
    });
    const untilWaiting = async (leaseTries: number) => {
      while ((calls.get('set') ?? 0) < leaseTries) await delay(5);
      await delay(20); // their SET NX replies ('busy') are back: they sleep on the key
    };
    return { waiters: made, untilWaiting };
  };

  it('when the lease holder fails, waiters with a value in grace serve it rather than rerun the factory', async () => {
    const [holder] = await instances(1, { graceMs: 60_000 });
    const { waiters, untilWaiting } = await countedWaiters(3, { graceMs: 60_000 });
    await holder!.set('failing-source', 'old', { ttlMs: 1 });
    await delay(5);
    let fail!: () => void;
    const holding = holder!.getOrSet(
      'failing-source',
      () => new Promise<string>((_, reject) => (fail = () => reject(new Error('source down')))),
    );
    while (fail === undefined) await delay(5); // the holder runs its factory under the lease
    const reasons: string[] = [];
    for (const waiter of waiters) waiter.on('stale', ({ reason }) => reasons.push(reason));
    let waiterRuns = 0;
    const factory = () => {
      waiterRuns += 1;
      return 'new';
    };
    const waited = waiters.map((waiter) => waiter.getOrSet('failing-source', factory));
    await untilWaiting(3);
    fail();
    expect(await holding).toBe('old');
    expect(await Promise.all(waited)).toEqual(['old', 'old', 'old']);
    expect(waiterRuns).toBe(0);
    expect(reasons).toEqual(['factory_error', 'factory_error', 'factory_error']);
    // As after their own factory failed: the source gets graceBackoffMs of calm from them too.
    expect(await waiters[0]!.getOrSet('failing-source', factory)).toBe('old');
    expect(waiterRuns).toBe(0);
  });

  it('a waiter whose value in grace was deleted meanwhile does not serve it when the holder fails', async () => {
    const [holder, deleter] = await instances(2, { graceMs: 60_000 });
    const { waiters, untilWaiting } = await countedWaiters(1, { graceMs: 60_000 });
    await holder!.set('deleted-in-grace', 'old', { ttlMs: 1 });
    await delay(5);
    let fail!: () => void;
    const holding = holder!.getOrSet(
      'deleted-in-grace',
      () => new Promise<string>((_, reject) => (fail = () => reject(new Error('source down')))),
    );
    while (fail === undefined) await delay(5);
    const waited = waiters[0]!.getOrSet('deleted-in-grace', () => 'new');
    await untilWaiting(1);
    // The value is deleted (say, withdrawn) while the waiter sleeps: its woken read finds no
    // value, its lease try finds the holder still busy, and it sleeps again.
    await deleter!.delete('deleted-in-grace');
    await untilWaiting(2);
    fail();
    await holding.catch(() => undefined);
    expect(await waited).toBe('new');
    expect(await waiters[0]!.get('deleted-in-grace')).toBe('new');
  });

  it('when a getOrSetMany holder fails, a waiter with a value in grace serves it', async () => {
    const [holder] = await instances(1, { graceMs: 60_000 });
    const { waiters, untilWaiting } = await countedWaiters(1, { graceMs: 60_000 });
    await holder!.setMany([
      { key: 'many-failing:a', value: 'old a', ttlMs: 1 },
      { key: 'many-failing:b', value: 'old b', ttlMs: 1 },
    ]);
    await delay(5);
    let fail!: () => void;
    const holding = holder!.getOrSetMany(
      ['many-failing:a', 'many-failing:b'],
      () => new Promise<Map<string, string>>((_, reject) => (fail = () => reject(new Error('source down')))),
    );
    while (fail === undefined) await delay(5);
    let waiterRuns = 0;
    const waited = waiters[0]!.getOrSet('many-failing:b', () => {
      waiterRuns += 1;
      return 'new b';
    });
    await untilWaiting(1);
    fail();
    expect(await holding).toEqual(['old a', 'old b']);
    expect(await waited).toBe('old b');
    expect(waiterRuns).toBe(0);
  });

  it('when the lease holder crashed (lease never released), a waiter takes the lease once it expires', async () => {
    const registry = new Registry();
    const [survivor] = await instances(1, {
      registry,
      lock: { leaseMs: 10_000, timeoutMs: 5_000, pollMs: 50 },
    });
    // What a crashed holder leaves behind: its lease, with the rest of its lifetime.
    await redis!.set(`${prefix}__lease:orphaned`, 'crashed-holder', 'PX', 300);
    let runs = 0;
    const value = await survivor!.getOrSet('orphaned', () => {
      runs += 1;
      return 'computed';
    });
    expect(value).toBe('computed');
    expect(runs).toBe(1);
    expect(await registry.metrics()).toContain(
      'noa_cache_manager_lock_waits_total{cache="cache",result="acquired"} 1',
    );
  });

  it('waiters serve the stale value when the holder is slower than their soft timeout', async () => {
    const [holder, waiter] = await instances(2, { graceMs: 60_000 });
    await holder!.set('graced', 'old', { ttlMs: 1 });
    await delay(5);
    let release!: () => void;
    const slow = holder!.getOrSet(
      'graced',
      () => new Promise<string>((resolve) => (release = () => resolve('new'))),
    );
    await delay(30);
    expect(await waiter!.getOrSet('graced', () => 'never', { softTimeoutMs: 50 })).toBe('old');
    release();
    expect(await slow).toBe('new');
  });

  it('background writes resolve first and reach Redis shortly after', async () => {
    const [writer, reader] = await instances(2, { writeMode: 'background' });
    await writer!.set('bg', 'value');
    expect(writer!.getLocal('bg')).toBe('value');
    const deadline = Date.now() + 5_000;
    let seen: unknown;
    while (seen === undefined && Date.now() < deadline) {
      seen = await reader!.get('bg');
      if (seen === undefined) await delay(10);
    }
    expect(seen).toBe('value');
  });

  it('a delete on another instance during a factory run keeps the run’s older result out of both tiers', async () => {
    const [computing, deleting] = await instances(2);
    let finish!: (value: string) => void;
    const result = computing!.getOrSet('changed', () => new Promise<string>((resolve) => (finish = resolve)));
    while (finish === undefined) await delay(5); // the factory has started
    const heard = new Promise<void>((resolve) => {
      const stop = computing!.onInvalidation((message) => {
        if (message.t === 'del' && message.k.some((key) => key.endsWith('changed'))) {
          stop();
          resolve();
        }
      });
    });
    await deleting!.delete('changed'); // the source changed; the running factory read it before
    await heard;
    finish('older');
    expect(await result).toBe('older');
    const [fresh] = await instances(1);
    expect(await fresh!.get('changed')).toBeUndefined();
    expect(computing!.getLocal('changed')).toBeUndefined();
  });

  it('early refresh (XFetch) of a hot key runs once across instances, while both keep serving', async () => {
    const clock = new ManualClock(Date.now());
    // A draw this small makes every hit near expiry decide to refresh: the worst case.
    const [a, b] = await instances(2, { clock, random: () => 1e-9, ttlMs: 10_000 });
    let runs = 0;
    const factory = async () => {
      runs += 1;
      await delay(20); // gives the entry a compute time, which XFetch scales its lead by
      return `version ${runs}`;
    };
    expect(await a!.getOrSet('xfetch', factory)).toBe('version 1');
    expect(await b!.get('xfetch')).toBe('version 1');
    clock.advance(9_990);
    const served = await Promise.all(
      [a!, b!].flatMap((cache) => Array.from({ length: 20 }, () => cache.getOrSet('xfetch', factory))),
    );
    expect(served.every((value) => value === 'version 1')).toBe(true);
    // close() waits for background refreshes.
    await Promise.all([a!.close(), b!.close()]);
    expect(runs).toBe(2);
    const reader = (await instances(1, { clock }))[0]!;
    expect(await reader.get('xfetch')).toBe('version 2');
  });

  it('a failing early refresh of a hot key is tried at most once per instance, and the value stays fresh on both', async () => {
    const clock = new ManualClock(Date.now());
    const [a, b] = await instances(2, { clock, random: () => 1e-300, ttlMs: 60_000, graceMs: 60_000 });
    let runs = 0;
    const factory = async () => {
      runs += 1;
      await delay(20);
      if (runs > 1) throw new Error('source down');
      return 'v1';
    };
    expect(await a!.getOrSet('xfetch-down', factory)).toBe('v1');
    expect(await b!.get('xfetch-down')).toBe('v1');
    clock.advance(50_000); // -ln(1e-300) ≈ 690 times ~20 ms: every hit from here decides to refresh
    for (let round = 0; round < 6; round += 1) {
      const served = await Promise.all(
        [a!, b!].flatMap((cache) => Array.from({ length: 20 }, () => cache.getOrSet('xfetch-down', factory))),
      );
      expect(served.every((value) => value === 'v1')).toBe(true);
      await delay(100); // the refreshes started by this round fail meanwhile
    }
    // One refresh per instance at most (the second one's lease may come after the first failed).
    expect(runs - 1).toBeLessThanOrEqual(2);
    clock.advance(9_000); // 59 s: still fresh everywhere
    expect([await a!.get('xfetch-down'), await b!.get('xfetch-down')]).toEqual(['v1', 'v1']);
  });

  it('early refresh near an l1.maxTtlMs cap renews the L1 copy from L2 and does not rerun the factory', async () => {
    const clock = new ManualClock(Date.now());
    for (const [key, sliding] of [
      ['capped', undefined],
      ['capped:sliding', 60_000],
    ] as const) {
      // Fresh in L2 for a minute; each L1 copy for 400 ms. Every hit near the cap decides to refresh.
      const [cache] = await instances(1, {
        clock,
        random: () => 1e-9,
        ttlMs: 60_000,
        slidingTtlMs: sliding,
        l1: { maxTtlMs: 400 },
      });
      let runs = 0;
      const factory = async () => {
        runs += 1;
        await delay(20);
        return `version ${runs}`;
      };
      expect(await cache!.getOrSet(key, factory)).toBe('version 1');
      for (let hit = 0; hit < 6; hit += 1) {
        clock.advance(300);
        expect(await cache!.getOrSet(key, factory)).toBe('version 1');
        await delay(40); // lets a background refresh, if any, finish
      }
      expect(runs).toBe(1); // L2 held the value all along: only the L1 copy was ending
    }
  });

  it('waiters give up with LockTimeoutError when the holder is too slow and nothing is stale', async () => {
    const [holder, waiter] = await instances(2);
    let release!: () => void;
    const slow = holder!.getOrSet(
      'slow',
      () => new Promise<string>((resolve) => (release = () => resolve('done'))),
    );
    await delay(30);
    const error = await waiter!
      .getOrSet('slow', () => 'never', { lockTimeoutMs: 150 })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(LockTimeoutError);
    expect(error).toMatchObject({ code: 'NOA_CACHE_LOCK_TIMEOUT' });
    release();
    expect(await slow).toBe('done');
  });

  it('a waiter’s hardTimeoutMs bounds its wait for another instance’s holder, as it bounds a factory', async () => {
    const [holder, waiter] = await instances(2, { graceMs: 60_000 });
    let release!: () => void;
    const slow = holder!.getOrSet(
      'hard',
      () => new Promise<string>((resolve) => (release = () => resolve('done'))),
    );
    await delay(30);
    // The holder runs until released: only the waiter's own bound can end its wait (lock.timeoutMs is 5 s).
    const error = await waiter!
      .getOrSet('hard', () => 'never', { hardTimeoutMs: 100 })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(FactoryTimeoutError);
    expect(error).toMatchObject({ code: 'NOA_CACHE_FACTORY_TIMEOUT' });
    release();
    expect(await slow).toBe('done');

    // With a value in grace, the hard timeout serves it, as runFactory does without a soft one.
    await holder!.set('hard-graced', 'old', { ttlMs: 1 });
    await delay(5);
    let releaseGraced!: () => void;
    const slowGraced = holder!.getOrSet(
      'hard-graced',
      () => new Promise<string>((resolve) => (releaseGraced = () => resolve('new'))),
    );
    await delay(30);
    const reasons: string[] = [];
    waiter!.on('stale', ({ reason }) => reasons.push(reason));
    expect(await waiter!.getOrSet('hard-graced', () => 'never', { hardTimeoutMs: 100 })).toBe('old');
    expect(reasons).toEqual(['hard_timeout']);
    releaseGraced();
    expect(await slowGraced).toBe('new');
  });

  it('a waiter whose value’s grace ends during its soft timeout does not serve it: it waits on to its hard timeout', async () => {
    const clock = new ManualClock(Date.now());
    const [holder, waiter] = await instances(2, { clock });
    await waiter!.set('grace-ends', 'old', { ttlMs: 100, graceMs: 1_000 });
    clock.advance(1_050); // in grace for 50 ms more
    let release!: () => void;
    const slow = holder!.getOrSet(
      'grace-ends',
      () => new Promise<string>((resolve) => (release = () => resolve('new'))),
    );
    await delay(30);
    const reasons: string[] = [];
    waiter!.on('stale', ({ reason }) => reasons.push(reason));
    const waited = waiter!
      .getOrSet('grace-ends', () => 'never', { softTimeoutMs: 50, hardTimeoutMs: 300 })
      .catch((caught: unknown) => caught);
    clock.advance(100); // the grace ends during the wait
    const error = await waited;
    expect(error).toBeInstanceOf(FactoryTimeoutError);
    expect(error).toMatchObject({ details: { key: 'grace-ends', timeoutMs: 300 } });
    expect(reasons).toEqual([]);
    release();
    expect(await slow).toBe('new');
  });

  it('a waiter that takes over the lease keeps its hardTimeoutMs from the start of the call', async () => {
    const [holder, waiter] = await instances(2);
    let fail!: () => void;
    const failing = holder!
      .getOrSet(
        'taken-over',
        () => new Promise<string>((_, reject) => (fail = () => reject(new Error('holder failed')))),
      )
      .catch(() => 'failed');
    await delay(30);
    const started = performance.now();
    const waited = waiter!
      .getOrSet('taken-over', () => new Promise<string>(() => {}), { hardTimeoutMs: 1_500 })
      .catch((caught: unknown) => caught);
    await delay(1_000);
    fail(); // the waiter takes the lease over, 1 s into its 1.5 s
    expect(await waited).toBeInstanceOf(FactoryTimeoutError);
    // Deadline test, generous bound: 1.5 s from the call, not 1.5 s from the take-over (2.5 s).
    expect(performance.now() - started).toBeLessThan(2_200);
    expect(await failing).toBe('failed');
  });

  it('a holder that caches nothing (ctx.skip, undefined) wakes the waiters at once, which then compute', async () => {
    const [holder] = await instances(1);
    // This waiter re-checks Redis only once a minute: without the holder's wake-up it would
    // still be waiting long after the generous 2 s bound below (the holder is done in ~100 ms).
    const [waiter] = await instances(1, { lock: { pollMs: 60_000, timeoutMs: 60_000 } });
    const soon = <T>(promise: Promise<T>) =>
      Promise.race([promise, delay(2_000).then(() => 'still waiting')]);
    for (const [key, skipping] of [
      ['skip:ctx', true],
      ['skip:undefined', false],
    ] as const) {
      const held = holder!.getOrSet(key, async (ctx) => {
        await delay(100);
        if (skipping) ctx.skip();
        return skipping ? 'not for the cache' : undefined;
      });
      await delay(30);
      const waited = waiter!.getOrSet(key, () => 'computed by the waiter');
      expect(await held).toBe(skipping ? 'not for the cache' : undefined);
      expect(await soon(waited)).toBe('computed by the waiter');
    }
    // getOrSetMany too, for the keys it leaves uncached.
    const batch = holder!.getOrSetMany(['skip:many'], async () => {
      await delay(100);
      return new Map<string, string>();
    });
    await delay(30);
    const waited = waiter!.getOrSet('skip:many', () => 'computed by the waiter');
    expect(await batch).toEqual([undefined]);
    expect(await soon(waited)).toBe('computed by the waiter');
  });
});

import diagnosticsChannel from 'node:diagnostics_channel';
import { ConfigError, delay, ManualClock } from '@noa/core';
import { recordingLogger } from '@noa/testkit';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import {
  Cache,
  type CacheOptions,
  EdgePurgeError,
  type EdgePurger,
  FactoryError,
  FactoryTimeoutError,
  shouldRefreshEarly,
} from '../src/index.js';

const caches: Cache[] = [];
function make(options: CacheOptions = {}): Cache {
  const cache = new Cache(options);
  caches.push(cache);
  return cache;
}
afterEach(async () => {
  await Promise.all(caches.splice(0).map((cache) => cache.close()));
});

/** A promise the test resolves or rejects by hand. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('grace period', () => {
  it('serves the stale value when the factory fails within grace, and errors after it', async () => {
    const clock = new ManualClock(1_000_000);
    const cache = make({ clock, ttlMs: 1_000, graceMs: 10_000, graceBackoffMs: 0 });
    expect(await cache.getOrSet('k', () => 'v1')).toBe('v1');
    clock.advance(1_500); // expired, in grace
    expect(await cache.getOrSet('k', () => Promise.reject(new Error('source down')))).toBe('v1');
    clock.advance(10_000); // past grace
    await expect(cache.getOrSet('k', () => Promise.reject(new Error('source down')))).rejects.toBeInstanceOf(
      FactoryError,
    );
  });

  it('backs off after a failure: the stale value counts as fresh for graceBackoffMs', async () => {
    const clock = new ManualClock(0);
    const cache = make({ clock, ttlMs: 1_000, graceMs: 60_000, graceBackoffMs: 5_000 });
    await cache.getOrSet('k', () => 'v1');
    clock.advance(2_000);
    let calls = 0;
    const failing = () => {
      calls += 1;
      return Promise.reject(new Error('down'));
    };
    expect(await cache.getOrSet('k', failing)).toBe('v1');
    clock.advance(4_000);
    expect(await cache.getOrSet('k', failing)).toBe('v1');
    expect(calls).toBe(1);
    clock.advance(1_001);
    expect(await cache.getOrSet('k', failing)).toBe('v1');
    expect(calls).toBe(2);
  });

  it('a key deleted while its factory runs stays deleted when the factory then fails (no back-off copy)', async () => {
    const clock = new ManualClock(0);
    const cache = make({ clock, ttlMs: 1_000, graceMs: 60_000, graceBackoffMs: 5_000 });
    await cache.set('k', 'v1');
    clock.advance(2_000);
    const source = deferred<string>();
    const pending = cache.getOrSet('k', () => source.promise);
    await tick();
    await cache.delete('k');
    source.reject(new Error('down'));
    await pending.catch(() => undefined);
    expect(await cache.get('k')).toBeUndefined();
    expect(await cache.getOrSet('k', () => 'v2')).toBe('v2');
  });

  it('a getOrSetMany key deleted while its factory runs stays deleted when the factory then fails', async () => {
    const clock = new ManualClock(0);
    const cache = make({ clock, ttlMs: 1_000, graceMs: 60_000, graceBackoffMs: 5_000 });
    await cache.setMany([
      { key: 'a', value: 'a1' },
      { key: 'b', value: 'b1' },
    ]);
    clock.advance(2_000);
    const source = deferred<Map<string, string>>();
    const pending = cache.getOrSetMany(['a', 'b'], () => source.promise);
    await tick();
    await cache.delete('a');
    source.reject(new Error('down'));
    await pending.catch(() => undefined);
    expect(await cache.get('a')).toBeUndefined();
    expect(await cache.get('b')).toBe('b1');
  });

  it('gives the factory the stale value', async () => {
    const clock = new ManualClock(0);
    const cache = make({ clock, ttlMs: 10, graceMs: 1_000 });
    await cache.getOrSet('k', () => 1);
    clock.advance(20);
    expect(await cache.getOrSet<number>('k', ({ staleValue }) => (staleValue ?? 0) + 1)).toBe(2);
  });
});

describe('timeouts', () => {
  it('soft timeout returns the stale value and lets the factory finish in background', async () => {
    const clock = new ManualClock(0);
    const cache = make({ clock, ttlMs: 100, graceMs: 10_000, softTimeoutMs: 20 });
    await cache.getOrSet('k', () => 'old');
    clock.advance(200);
    const slow = deferred<string>();
    expect(await cache.getOrSet('k', () => slow.promise)).toBe('old');
    slow.resolve('new');
    await tick();
    await tick();
    expect(await cache.get('k')).toBe('new');
  });

  it('hard timeout rejects with FactoryTimeoutError when nothing stale exists, and still caches the late value', async () => {
    const cache = make({ hardTimeoutMs: 20 });
    const slow = deferred<string>();
    const error = await cache.getOrSet('k', () => slow.promise).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(FactoryTimeoutError);
    expect(error).toMatchObject({ code: 'NOA_CACHE_FACTORY_TIMEOUT', details: { key: 'k', timeoutMs: 20 } });
    slow.resolve('late');
    await tick();
    await tick();
    expect(await cache.get('k')).toBe('late');
  });

  it('a factory still running past the soft timeout is joined by later callers, not started again', async () => {
    const clock = new ManualClock(0);
    const cache = make({ clock, ttlMs: 100, graceMs: 60_000, softTimeoutMs: 20 });
    await cache.getOrSet('k', () => 'old');
    clock.advance(200);
    const slow = deferred<string>();
    let calls = 0;
    const factory = () => {
      calls += 1;
      return slow.promise;
    };
    expect(await cache.getOrSet('k', factory)).toBe('old');
    expect(await cache.getOrSet('k', factory)).toBe('old'); // its own soft timeout, on the same run
    expect(calls).toBe(1);
    const third = cache.getOrSet('k', factory);
    slow.resolve('new');
    expect(await third).toBe('new');
    expect(calls).toBe(1);
  });

  it('a caller joining a late run that then fails gets the value in grace, reason factory_error', async () => {
    const clock = new ManualClock(0);
    const cache = make({ clock, ttlMs: 100, graceMs: 60_000, softTimeoutMs: 20 });
    const reasons: string[] = [];
    cache.on('stale', ({ reason }) => reasons.push(reason));
    await cache.getOrSet('k', () => 'old');
    clock.advance(200);
    const slow = deferred<string>();
    let calls = 0;
    const factory = () => {
      calls += 1;
      return slow.promise;
    };
    expect(await cache.getOrSet('k', factory)).toBe('old');
    const joined = cache.getOrSet('k', factory, { softTimeoutMs: 60_000 });
    await tick();
    slow.reject(new Error('source down'));
    expect(await joined).toBe('old');
    expect(calls).toBe(1);
    expect(reasons).toEqual(['soft_timeout', 'factory_error']);
  });

  it('after a hard timeout later callers wait for the same run, and get its value', async () => {
    const cache = make({ hardTimeoutMs: 20 });
    const slow = deferred<string>();
    let calls = 0;
    const factory = () => {
      calls += 1;
      return slow.promise;
    };
    await expect(cache.getOrSet('k', factory)).rejects.toBeInstanceOf(FactoryTimeoutError);
    await expect(cache.getOrSet('k', factory)).rejects.toBeInstanceOf(FactoryTimeoutError);
    const third = cache.getOrSet('k', factory);
    slow.resolve('late');
    expect(await third).toBe('late');
    expect(calls).toBe(1);
  });

  it('a run that never settles is joined only for lock.leaseMs: then the next caller runs the factory again', async () => {
    const cache = make({ hardTimeoutMs: 20, lock: { leaseMs: 60 } });
    const hung = deferred<string>();
    await expect(cache.getOrSet('k', () => hung.promise)).rejects.toBeInstanceOf(FactoryTimeoutError);
    // Past the lease another instance would run it again; so does this one.
    await delay(120);
    expect(await cache.getOrSet('k', () => 'fresh')).toBe('fresh');
    expect(await cache.get('k')).toBe('fresh');
    hung.resolve('late');
  });

  it('a run slower than lock.leaseMs is joined until then; the run started after it is the one cached, with a warning naming lock.leaseMs', async () => {
    const logger = recordingLogger();
    // A lease a loaded machine cannot outrun between the first two calls (100 ms could pass).
    const cache = make({ hardTimeoutMs: 20, lock: { leaseMs: 1_000 }, logger });
    const slow = deferred<string>();
    let calls = 0;
    const factory = () => {
      calls += 1;
      return calls === 1 ? slow.promise : Promise.resolve('second');
    };
    await expect(cache.getOrSet('k', factory)).rejects.toBeInstanceOf(FactoryTimeoutError);
    await expect(cache.getOrSet('k', factory)).rejects.toBeInstanceOf(FactoryTimeoutError);
    expect(calls).toBe(1);
    expect(logger.messages('warn').filter((message) => message.includes('lock.leaseMs'))).toEqual([]);
    await delay(1_050);
    expect(await cache.getOrSet('k', factory)).toBe('second');
    expect(calls).toBe(2);
    expect(logger.messages('warn').filter((message) => message.includes('lock.leaseMs'))).toHaveLength(1);
    // The first run read its source before the second: its late value is not cached over.
    slow.resolve('first, late');
    await tick();
    await tick();
    expect(await cache.get('k')).toBe('second');
  });

  it('a getOrSetMany run slower than lock.leaseMs is joined until then, as a getOrSet run: the run started after it is the one cached', async () => {
    const logger = recordingLogger();
    const cache = make({ lock: { leaseMs: 100 }, logger });
    const hung = deferred<string[]>();
    let runs = 0;
    const batch = cache.getOrSetMany(['k', 'other'], () => {
      runs += 1;
      return hung.promise;
    });
    // Joined within the lease (a timed caller times out on it, without a run of its own).
    await expect(cache.getOrSet('k', async () => 'not yet', { hardTimeoutMs: 20 })).rejects.toBeInstanceOf(
      FactoryTimeoutError,
    );
    await delay(150);
    // Past it, the hung batch no longer holds its keys: a getOrSet runs the factory, once.
    let later = 0;
    const second = async () => {
      later += 1;
      return 'second';
    };
    expect(await cache.getOrSet('k', second, { hardTimeoutMs: 20 })).toBe('second');
    expect(await cache.getOrSetMany(['other'], async () => ['second other'])).toEqual(['second other']);
    expect(later).toBe(1);
    expect(runs).toBe(1);
    expect(
      logger.messages('warn').filter((message) => message.includes('lock.leaseMs')).length,
    ).toBeGreaterThan(0);
    // The batch read its source before: its late values go to its caller, are not cached over.
    hung.resolve(['first k, late', 'first other, late']);
    expect(await batch).toEqual(['first k, late', 'first other, late']);
    expect(await cache.get('k')).toBe('second');
    expect(await cache.get('other')).toBe('second other');
  });

  it('a late run that a delete superseded is not joined: the next caller computes anew', async () => {
    const cache = make({ hardTimeoutMs: 20 });
    const slow = deferred<string>();
    await expect(cache.getOrSet('k', () => slow.promise)).rejects.toBeInstanceOf(FactoryTimeoutError);
    await cache.delete('k');
    expect(await cache.getOrSet('k', () => 'after')).toBe('after');
    slow.resolve('before');
    await tick();
    await tick();
    expect(await cache.get('k')).toBe('after');
  });

  it('a value whose grace ends during the soft timeout is not served: the call goes on as one with nothing stale', async () => {
    const clock = new ManualClock(0);
    const cache = make({ clock, ttlMs: 100, graceMs: 1_000, softTimeoutMs: 20, hardTimeoutMs: 200 });
    const reasons: string[] = [];
    cache.on('stale', ({ reason }) => reasons.push(reason));
    await cache.getOrSet('k', () => 'old');
    clock.advance(1_050); // in grace for 50 ms more
    const slow = deferred<string>();
    const pending = cache.getOrSet('k', () => slow.promise).catch((error: unknown) => error);
    clock.advance(100); // the grace ends while the factory runs
    const error = await pending;
    expect(error).toBeInstanceOf(FactoryTimeoutError);
    expect(error).toMatchObject({ details: { key: 'k', timeoutMs: 200 } });
    expect(reasons).toEqual([]);
    slow.resolve('new');
  });

  it('softTimeoutMs at or above hardTimeoutMs is accepted, each applying on its own side: the soft with a value in grace, the hard without', async () => {
    const clock = new ManualClock(0);
    const cache = make({ clock, ttlMs: 100, graceMs: 60_000, softTimeoutMs: 60_000, hardTimeoutMs: 20 });
    await cache.getOrSet('k', () => 'old');
    clock.advance(200);
    // A value in grace: the hard timeout does not apply; the call waits for the factory (up to the soft one).
    const slow = deferred<string>();
    const withStale = cache.getOrSet('k', () => slow.promise);
    expect(await Promise.race([withStale, delay(200).then(() => 'still waiting')])).toBe('still waiting');
    slow.resolve('new');
    expect(await withStale).toBe('new');
    // Nothing stale: the hard timeout ends the call.
    const never = deferred<string>();
    const error = await cache.getOrSet('cold', () => never.promise).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(FactoryTimeoutError);
    expect(error).toMatchObject({ details: { key: 'cold', timeoutMs: 20 } });
    never.resolve('late');
  });

  it('a caller with a shorter hard timeout than the call in flight for its key gets its own timeout', async () => {
    const cache = make();
    const slow = deferred<string>();
    let calls = 0;
    const factory = () => {
      calls += 1;
      return slow.promise;
    };
    const patient = cache.getOrSet('k', factory, { hardTimeoutMs: 60_000 });
    const hurried = cache.getOrSet('k', factory, { hardTimeoutMs: 20 }).catch((error: unknown) => error);
    // Generous: the hurried caller's 20 ms, or the patient one's 60 s when it shares that wait.
    const outcome = await Promise.race([hurried, delay(3_000).then(() => 'still waiting')]);
    expect(outcome).toBeInstanceOf(FactoryTimeoutError);
    expect(outcome).toMatchObject({ details: { key: 'k', timeoutMs: 20 } });
    slow.resolve('v');
    expect(await patient).toBe('v');
    expect(calls).toBe(1);
  });

  it('a caller with a longer hard timeout than the call in flight for its key waits for the run past it', async () => {
    const cache = make();
    const slow = deferred<string>();
    let calls = 0;
    const factory = () => {
      calls += 1;
      return slow.promise;
    };
    const hurried = cache.getOrSet('k', factory, { hardTimeoutMs: 20 }).catch((error: unknown) => error);
    const patient = cache.getOrSet('k', factory, { hardTimeoutMs: 60_000 }).catch((error: unknown) => error);
    expect(await hurried).toBeInstanceOf(FactoryTimeoutError);
    slow.resolve('v');
    expect(await patient).toBe('v');
    expect(calls).toBe(1);
  });

  it('a caller without a soft timeout does not get the stale value of the call in flight with one', async () => {
    const clock = new ManualClock(0);
    const cache = make({ clock, ttlMs: 100, graceMs: 60_000 });
    await cache.getOrSet('k', () => 'old');
    clock.advance(200);
    const slow = deferred<string>();
    const hurried = cache.getOrSet('k', () => slow.promise, { softTimeoutMs: 20 });
    const patient = cache.getOrSet('k', () => slow.promise);
    expect(await hurried).toBe('old');
    slow.resolve('new');
    expect(await patient).toBe('new');
  });

  it('getOrSetMany, which has no timeouts, does not get the timeout error of a getOrSet in flight for a key', async () => {
    const cache = make();
    const slow = deferred<string>();
    let calls = 0;
    const hurried = cache
      .getOrSet(
        'k',
        () => {
          calls += 1;
          return slow.promise;
        },
        { hardTimeoutMs: 20 },
      )
      .catch((error: unknown) => error);
    const batch = cache
      .getOrSetMany(['k', 'other'], (keys) => {
        calls += 1;
        return keys.map((key) => `batch ${key}`);
      })
      .catch((error: unknown) => error);
    expect(await hurried).toBeInstanceOf(FactoryTimeoutError);
    slow.resolve('v');
    expect(await batch).toEqual(['v', 'batch other']);
    expect(calls).toBe(2);
  });

  it('without timeouts waits for the factory', async () => {
    const cache = make();
    const slow = deferred<number>();
    const pending = cache.getOrSet('k', () => slow.promise);
    setTimeout(() => slow.resolve(7), 30);
    expect(await pending).toBe(7);
  });
});

describe('early refresh (XFetch)', () => {
  it('the decision is never taken for entries without expiry or compute time, and always at expiry', () => {
    const base = { value: 1, createdAt: 0, staleUntil: 2_000, tags: [] };
    expect(
      shouldRefreshEarly({ ...base, expiresAt: Number.POSITIVE_INFINITY, computeMs: 50 }, 0, 1, () => 0.5),
    ).toBe(false);
    expect(shouldRefreshEarly({ ...base, expiresAt: 1_000, computeMs: 0 }, 999, 1, () => 1e-9)).toBe(false);
    expect(shouldRefreshEarly({ ...base, expiresAt: 1_000, computeMs: 50 }, 1_000, 1, () => 1)).toBe(true);
    // Far from expiry only an extremely unlucky draw refreshes.
    expect(shouldRefreshEarly({ ...base, expiresAt: 1_000, computeMs: 50 }, 0, 1, () => 0.5)).toBe(false);
    // Close to expiry (within compute time × -ln(draw)) it does.
    expect(shouldRefreshEarly({ ...base, expiresAt: 1_000, computeMs: 50 }, 980, 1, () => 0.5)).toBe(true);
  });

  it('a hit near expiry serves the current value and refreshes once in background', async () => {
    const clock = new ManualClock(0);
    let draw = 0.99;
    const cache = make({ clock, ttlMs: 1_000, random: () => draw });
    let calls = 0;
    const factory = async () => {
      calls += 1;
      await delay(5);
      return `v${calls}`;
    };
    expect(await cache.getOrSet('k', factory)).toBe('v1');
    clock.advance(900);
    expect(await cache.getOrSet('k', factory)).toBe('v1'); // draw 0.99: no refresh yet
    expect(calls).toBe(1);
    draw = 1e-30; // -ln(draw) ≈ 69: with ~5 ms compute time, 345 ms early
    const results = await Promise.all(Array.from({ length: 20 }, () => cache.getOrSet('k', factory)));
    expect(results.every((value) => value === 'v1')).toBe(true);
    await delay(30);
    expect(calls).toBe(2);
    draw = 0.99;
    expect(await cache.getOrSet('k', factory)).toBe('v2');
  });
});

describe('early refresh (XFetch) still running at expiry', () => {
  it('is joined by the miss that follows, not run a second time', async () => {
    const clock = new ManualClock(0);
    let draw = 0.99;
    const cache = make({ clock, ttlMs: 60_000, random: () => draw });
    const slow = deferred<string>();
    let calls = 0;
    const factory = async () => {
      calls += 1;
      if (calls === 1) {
        await delay(20); // a compute time for XFetch to weigh
        return 'v1';
      }
      return slow.promise;
    };
    expect(await cache.getOrSet('k', factory)).toBe('v1');
    clock.advance(59_000);
    draw = 1e-300;
    expect(await cache.getOrSet('k', factory)).toBe('v1'); // starts the refresh
    await tick();
    expect(calls).toBe(2);
    clock.advance(2_000); // expired while the refresh runs
    const missed = cache.getOrSet('k', factory);
    slow.resolve('v2');
    expect(await missed).toBe('v2');
    expect(calls).toBe(2);
  });
});

/** A source that answers 'v1' (after `ms`) once, then fails: a refresh that cannot succeed. */
function upThenDown(ms: number) {
  const source = {
    calls: 0,
    factory: async () => {
      source.calls += 1;
      await delay(ms);
      if (source.calls > 1) throw new Error('source down');
      return 'v1';
    },
  };
  return source;
}

describe('early refresh (XFetch) that fails', () => {
  it('is no stale value served: callers had the fresh one', async () => {
    const clock = new ManualClock(0);
    let draw = 0.99;
    const cache = make({ clock, ttlMs: 1_000, graceMs: 60_000, random: () => draw });
    const stale: string[] = [];
    cache.on('stale', ({ reason }) => stale.push(reason));
    const source = upThenDown(5);
    const factory = source.factory;
    expect(await cache.getOrSet('k', factory)).toBe('v1');
    clock.advance(900);
    draw = 1e-30;
    expect(await cache.getOrSet('k', factory)).toBe('v1'); // fresh, and starts the refresh
    await delay(30);
    expect(source.calls).toBe(2);
    expect(stale).toEqual([]);
    expect(cache.stats().staleServed.factory_error).toBe(0);
    expect(cache.stats().factoryErrors).toBe(1);
  });

  it('leaves the value fresh until its own expiry, and starts no other refresh right after', async () => {
    const clock = new ManualClock(0);
    let draw = 0.99;
    const cache = make({ clock, ttlMs: 60_000, graceMs: 60_000, graceBackoffMs: 5_000, random: () => draw });
    const source = upThenDown(20);
    const factory = source.factory;
    expect(await cache.getOrSet('k', factory)).toBe('v1');
    clock.advance(50_000);
    draw = 1e-300; // -ln(draw) ≈ 690: with ~20 ms of compute time, due over 10 s before expiry
    expect(await cache.getOrSet('k', factory)).toBe('v1'); // fresh, and starts the refresh
    await delay(60);
    expect(source.calls).toBe(2);
    expect(await cache.getOrSet('k', factory)).toBe('v1'); // the failing source gets its calm
    await delay(60);
    expect(source.calls).toBe(2);
    clock.advance(6_000); // past graceBackoffMs, still 4 s before the value expires
    // The back-off copy ended the value's freshness with the back-off: a miss 4 s early.
    expect(await cache.get('k')).toBe('v1');
    expect(cache.getLocal('k')).toBe('v1');
  });
});

describe('early refresh (XFetch) slower than the cache timeouts', () => {
  it('is awaited in background without a timeout: no stale value counted, its failure backs off', async () => {
    const clock = new ManualClock(0);
    let draw = 0.99;
    const cache = make({
      clock,
      ttlMs: 60_000,
      graceMs: 60_000,
      graceBackoffMs: 5_000,
      softTimeoutMs: 10,
      random: () => draw,
    });
    const stale: string[] = [];
    cache.on('stale', ({ reason }) => stale.push(reason));
    const source = upThenDown(40);
    const factory = source.factory;
    expect(await cache.getOrSet('k', factory)).toBe('v1');
    clock.advance(50_000);
    draw = 1e-300; // -ln(draw) ≈ 690: with ~40 ms of compute time, due long before expiry
    expect(await cache.getOrSet('k', factory)).toBe('v1'); // fresh, and starts the refresh
    await delay(100);
    expect(source.calls).toBe(2);
    // Nobody was served a stale value: every caller had the fresh one.
    expect(stale).toEqual([]);
    expect(cache.stats().staleServed.soft_timeout).toBe(0);
    // Its failure reached the back-off (a timed-out run's failure did not): no refresh at once.
    expect(await cache.getOrSet('k', factory)).toBe('v1');
    await delay(100);
    expect(source.calls).toBe(2);
  });
});

describe('writes and deletes during a factory run', () => {
  it('win over the run: its result goes to its callers but is not cached over them', async () => {
    const cache = make();
    const run = (key: string, tags: string[] = []) => {
      const source = deferred<string>();
      const result = cache.getOrSet(key, () => source.promise, { tags });
      return { result, finish: (value: string) => source.resolve(value) };
    };
    const written = run('written');
    const deleted = run('deleted');
    const tagged = run('tagged', ['product:1']);
    const cleared = cache.namespace('ns');
    const clearedSource = deferred<string>();
    const clearedResult = cleared.getOrSet('k', () => clearedSource.promise);
    await tick();
    await cache.set('written', 'newer'); // write-through of a change the factory did not see
    await cache.delete('deleted');
    await cache.deleteByTag('product:1');
    await cleared.clear();
    written.finish('older');
    deleted.finish('older');
    tagged.finish('older');
    clearedSource.resolve('older');
    expect(await Promise.all([written.result, deleted.result, tagged.result, clearedResult])).toEqual([
      'older',
      'older',
      'older',
      'older',
    ]);
    expect(await cache.getMany(['written', 'deleted', 'tagged'])).toEqual(['newer', undefined, undefined]);
    expect(await cleared.get('k')).toBeUndefined();
    // The next miss computes again.
    expect(await cache.getOrSet('deleted', () => 'fresh')).toBe('fresh');
  });

  it('a deleteByTag or expireByTag wins over a run that tags its result through the context only after it', async () => {
    const cache = make({ ttlMs: 60_000, graceMs: 60_000 });
    // The factory reads the source, the source changes and its tag is invalidated, and then
    // the factory chooses its tags from what it read (`ctx.setOptions`, as the Match example does).
    const run = (key: string, tag: string) => {
      const source = deferred<string>();
      const result = cache.getOrSet<string>(key, async (ctx) => {
        const value = await source.promise;
        ctx.setOptions({ tags: [tag] });
        return value;
      });
      return { result, finish: (value: string) => source.resolve(value) };
    };
    const deleted = run('deleted', 'product:1');
    const expired = run('expired', 'product:2');
    const untouched = run('untouched', 'product:3');
    const inNamespace = (name: string) => {
      const view = cache.namespace(name);
      const source = deferred<string>();
      const result = view.getOrSet<string>('k', async (ctx) => {
        const value = await source.promise;
        ctx.setOptions({ tags: ['product:4'] });
        return value;
      });
      return { view, result, finish: (value: string) => source.resolve(value) };
    };
    const namespaced = inNamespace('ns');
    const otherNamespace = inNamespace('other');
    await tick();
    await cache.deleteByTag('product:1');
    await cache.expireByTag('product:2');
    // Tags are a namespace's own: this reaches `ns`'s run, not `other`'s.
    await namespaced.view.deleteByTag('product:4');
    deleted.finish('older');
    expired.finish('older');
    untouched.finish('current');
    namespaced.finish('older');
    otherNamespace.finish('current');
    expect(
      await Promise.all([
        deleted.result,
        expired.result,
        untouched.result,
        namespaced.result,
        otherNamespace.result,
      ]),
    ).toEqual(['older', 'older', 'current', 'older', 'current']);
    // Served to the runs' callers, not cached over the invalidations they came after.
    expect(await cache.getMany(['deleted', 'expired', 'untouched'])).toEqual([
      undefined,
      undefined,
      'current',
    ]);
    expect(await namespaced.view.get('k')).toBeUndefined();
    expect(await otherNamespace.view.get('k')).toBe('current');
    // A tag invalidated before the run started does not stop it from caching.
    const fresh = await cache.getOrSet('deleted', (ctx) => {
      ctx.setOptions({ tags: ['product:1'] });
      return 'fresh';
    });
    expect(fresh).toBe('fresh');
    expect(await cache.get('deleted')).toBe('fresh');
  });

  it('a caller after a delete, tag delete or clear starts its own load: it never gets the value the change removed', async () => {
    // The load in flight serves its first caller the value in grace past its soft timeout. A
    // caller that asked after the change joined that load (README "Hard timeout": joined until
    // a write, delete or expire supersedes it) and got the deleted value with it, with the same
    // timeouts (the flight's outcome) or others (the flight's value in grace).
    const clock = new ManualClock(0);
    const cache = make({ clock, ttlMs: 100, graceMs: 60_000 });
    const view = cache.namespace('ns');
    const pending: ((value: string) => void)[] = [];
    const hung = () => {
      const source = deferred<string>();
      pending.push(source.resolve);
      return source.promise;
    };
    const slowlyNew = () => delay(30).then(() => 'new');
    const changes = {
      delete: () => cache.delete('k'),
      deleteByTag: () => cache.deleteByTag('t'),
      clear: () => view.clear(),
    };
    for (const [name, change] of Object.entries(changes)) {
      for (const joiner of [{ softTimeoutMs: 10 }, { softTimeoutMs: 5, hardTimeoutMs: 2_000 }]) {
        const on = name === 'clear' ? view : cache;
        await on.set('k', 'old', { tags: ['t'] });
        clock.advance(200); // in grace
        const first = on.getOrSet('k', hung, { softTimeoutMs: 10, tags: ['t'] });
        await tick();
        await change();
        const later = await on.getOrSet('k', slowlyNew, { ...joiner, tags: ['t'] });
        expect({ name, joiner, later }).toEqual({ name, joiner, later: 'new' });
        // The first caller asked before the change: it is served the value it found.
        expect(await first).toBe('old');
        expect(await on.get('k')).toBe('new');
        for (const resolve of pending.splice(0)) resolve('older');
        await on.delete('k');
      }
    }
  });
});

describe('L1 value modes', () => {
  it('freeze makes cached values immutable', async () => {
    const cache = make({ l1: { mode: 'freeze' } });
    await cache.set('k', { nested: { n: 1 } });
    const value = (await cache.get<{ nested: { n: number } }>('k'))!;
    expect(Object.isFrozen(value.nested)).toBe(true);
  });

  it('freeze reaches inside a value the caller froze only at its top', async () => {
    const cache = make({ l1: { mode: 'freeze' } });
    await cache.set('k', Object.freeze({ nested: { n: 1 }, list: [1], map: new Map([['a', 1]]) }));
    const value = (await cache.get<{ nested: { n: number }; list: number[]; map: Map<string, number> }>(
      'k',
    ))!;
    expect(Object.isFrozen(value.nested)).toBe(true);
    expect(Object.isFrozen(value.list)).toBe(true);
    expect(() => value.map.set('b', 2)).toThrow(TypeError);
    expect((await cache.get<typeof value>('k'))!.map.has('b')).toBe(false);
  });

  it('freeze makes Maps, Sets and Dates immutable too: their mutators throw', async () => {
    const cache = make({ l1: { mode: 'freeze' } });
    await cache.set('k', {
      map: new Map([['a', { n: 1 }]]),
      set: new Set(['a']),
      at: new Date(5),
    });
    const read = async () =>
      (await cache.get<{ map: Map<string, unknown>; set: Set<string>; at: Date }>('k'))!;
    const value = await read();
    expect(() => value.map.set('b', 2)).toThrow(TypeError);
    expect(() => value.map.delete('a')).toThrow(TypeError);
    expect(() => value.map.clear()).toThrow(TypeError);
    expect(() => value.set.add('b')).toThrow(TypeError);
    expect(() => value.set.delete('a')).toThrow(TypeError);
    expect(() => value.set.clear()).toThrow(TypeError);
    expect(() => value.at.setTime(9)).toThrow(TypeError);
    expect(() => value.at.setUTCFullYear(2000)).toThrow(TypeError);
    const again = await read();
    expect([...again.map.keys()]).toEqual(['a']);
    expect([...again.set]).toEqual(['a']);
    expect(again.at.getTime()).toBe(5);
    // Reads still work, and the values still copy as plain Maps, Sets and Dates.
    expect(again.map.get('a')).toEqual({ n: 1 });
    expect(structuredClone(again)).toEqual({
      map: new Map([['a', { n: 1 }]]),
      set: new Set(['a']),
      at: new Date(5),
    });
  });

  it('freeze reaches the end of a deeply nested value without overflowing the stack', async () => {
    const cache = make({ l1: { mode: 'freeze' } });
    type Node = { n: number; next: Node | undefined; seen: Map<string, Date> };
    let list: Node | undefined;
    for (let n = 0; n < 20_000; n += 1) list = { n, next: list, seen: new Map([['at', new Date(n)]]) };
    await cache.set('list', list);
    let node = await cache.get<Node>('list');
    let frozen = 0;
    while (node) {
      if (Object.isFrozen(node)) frozen += 1;
      node = node.next;
    }
    expect(frozen).toBe(20_000);
    const head = (await cache.get<Node>('list'))!;
    expect(() => head.seen.get('at')!.setTime(0)).toThrow(TypeError);
  });

  it('freeze freezes a copy: the objects the caller wrote, and those they reference, stay the caller’s', async () => {
    const cache = make({ l1: { mode: 'freeze' } });
    class Point {
      constructor(
        public x: number,
        public y: number,
      ) {}
    }
    const shared = { retries: 3 };
    const written = {
      map: new Map([['a', 1]]),
      set: new Set([1]),
      at: new Date(0),
      list: [1, 2],
      config: shared,
      again: shared,
      nothing: Object.create(null) as Record<string, number>,
    };
    await cache.set('k', written);
    written.map.set('b', 2);
    written.set.add(2);
    written.at.setTime(5);
    written.list.push(3);
    shared.retries = 4;
    written.nothing.n = 1;
    const value = (await cache.get<typeof written>('k'))!;
    expect(value).not.toBe(written);
    expect([...value.map]).toEqual([['a', 1]]);
    expect([...value.set]).toEqual([1]);
    expect(value.at.getTime()).toBe(0);
    expect(value.list).toEqual([1, 2]);
    expect(value.config).toEqual({ retries: 3 });
    expect(value.again).toBe(value.config);
    expect(Object.getPrototypeOf(value.nothing)).toBe(null);
    expect(Object.isFrozen(value.config)).toBe(true);
    expect(() => value.map.set('c', 3)).toThrow(TypeError);
    // An array's own named properties and symbol-keyed properties are part of the copy too.
    const marker = Symbol('marker');
    const page = Object.assign([1, 2], { total: 40 });
    await cache.set('page', { page, [marker]: 'm' });
    const readPage = (await cache.get<{ page: number[] & { total: number }; [marker]: string }>('page'))!;
    expect(readPage.page.total).toBe(40);
    expect(readPage[marker]).toBe('m');
    expect(Object.isFrozen(readPage.page)).toBe(true);
    // A cycle is copied as a cycle; a value read back in freeze mode is stored as it is.
    const cyclic: { self?: unknown; n: number } = { n: 1 };
    cyclic.self = cyclic;
    await cache.set('cyclic', cyclic);
    const cycle = (await cache.get<typeof cyclic>('cyclic'))!;
    expect(cycle.self).toBe(cycle);
    expect(Object.isFrozen(cyclic)).toBe(false);
    await cache.set('again', cycle);
    expect(await cache.get('again')).toBe(cycle);
    // A class instance keeps its prototype: it is frozen as it is, not copied (README).
    const point = new Point(1, 2);
    await cache.set('point', point);
    expect(await cache.get('point')).toBeInstanceOf(Point);
    // A factory's value is its own: frozen as a copy too, so a factory may return shared state.
    const state = { hits: 0 };
    await cache.getOrSet('state', () => state);
    state.hits += 1;
    expect(await cache.get('state')).toEqual({ hits: 0 });
  });

  it('clone hands out copies', async () => {
    const cache = make({ l1: { mode: 'clone' } });
    await cache.set('k', { n: 1 });
    const first = (await cache.get<{ n: number }>('k'))!;
    first.n = 2;
    expect(await cache.get('k')).toEqual({ n: 1 });
  });

  it('clone gives the caller that computed a value, and the writer of one, their own copies', async () => {
    const cache = make({ l1: { mode: 'clone' } });
    const computed = await cache.getOrSet('computed', () => ({ n: 1 }));
    computed.n = 2;
    expect(await cache.get('computed')).toEqual({ n: 1 });
    const written = { n: 1 };
    await cache.set('written', written);
    written.n = 2;
    expect(await cache.get('written')).toEqual({ n: 1 });
    const wrapped = cache.wrap(
      () => ({ n: 1 }),
      () => 'wrapped',
    );
    (await wrapped()).n = 2;
    expect(await cache.get('wrapped')).toEqual({ n: 1 });
  });

  it('reference hands out the same object', async () => {
    const cache = make();
    const value = { n: 1 };
    await cache.set('k', value);
    expect(await cache.get('k')).toBe(value);
    expect(cache.getLocal('k')).toBe(value);
  });
});

describe('tags and the edge hook', () => {
  it('purges tied tags at the edge and not others', async () => {
    const purged: string[][] = [];
    const purger: EdgePurger = {
      purgeTags: async (tags) => {
        purged.push([...tags]);
      },
    };
    const cache = make({ edge: { purger, tags: ['products'] } });
    await cache.set('p', 1, { tags: ['products'] });
    await cache.set('u', 2, { tags: ['users'] });
    await cache.deleteByTag(['products', 'users']);
    expect(purged).toEqual([['products']]);
    expect(await cache.getMany(['p', 'u'])).toEqual([undefined, undefined]);
  });

  it('rejects with EdgePurgeError, the purger error as cause, once the cache entries are deleted', async () => {
    const outage = new Error('CDN API 503');
    const cache = make({
      edge: {
        purger: {
          purgeTags: async () => {
            throw outage;
          },
        },
      },
    });
    await cache.set('p', 1, { tags: ['products'] });
    const error = await cache.deleteByTag('products').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(EdgePurgeError);
    expect(error).toMatchObject({
      code: 'NOA_CACHE_EDGE_PURGE_FAILED',
      cause: outage,
      details: { tags: ['products'] },
    });
    expect(await cache.get('p')).toBeUndefined();
  });

  it('rejects with EdgePurgeError once edge.timeoutMs passes when the purger hangs', async () => {
    const cache = make({ edge: { purger: { purgeTags: () => new Promise<void>(() => {}) }, timeoutMs: 50 } });
    await cache.set('p', 1, { tags: ['products'] });
    const error = await cache.deleteByTag('products').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(EdgePurgeError);
    expect(error).toMatchObject({ cause: { code: 'NOA_TIMEOUT' } });
    expect(await cache.get('p')).toBeUndefined();
  });

  it('forgets tags of evicted keys', async () => {
    const cache = make({ l1: { maxEntries: 1 } });
    await cache.set('a', 1, { tags: ['t'] });
    await cache.set('b', 2, { tags: ['t'] });
    expect(await cache.deleteByTag('t')).toBe(1);
  });
});

describe('options and lifecycle', () => {
  it('rejects bad options with a ConfigError naming the field', () => {
    expect(() => new Cache({ l1: { maxEntries: 0 } })).toThrow(ConfigError);
    try {
      new Cache({ ttlMs: -1, l1: { policy: 'random' as 'lru' } });
    } catch (error) {
      expect((error as ConfigError).fields.sort()).toEqual(['l1.policy', 'ttlMs']);
    }
  });

  it('rejects calls after close with ClosedError', async () => {
    const cache = new Cache();
    await cache.close();
    await expect(cache.get('k')).rejects.toMatchObject({ code: 'NOA_CLOSED' });
    await expect(cache.getOrSet('k', () => 1)).rejects.toMatchObject({ code: 'NOA_CLOSED' });
  });

  it('logs a factory failure served stale, and a value it cannot keep, as warnings naming the key', async () => {
    const logger = recordingLogger();
    const clock = new ManualClock(0);
    const cache = make({ logger, clock, ttlMs: 1_000, graceMs: 60_000, l1: { mode: 'clone' } });
    await cache.getOrSet('k', () => 'v1');
    clock.advance(2_000);
    await cache.getOrSet('k', () => Promise.reject(new Error('source down')));
    // A function cannot be cloned, so clone mode cannot keep it: served once, not cached.
    const uncloneable = { run: () => 1 };
    expect(await cache.getOrSet('fn', () => uncloneable)).toBe(uncloneable);
    expect(await cache.get('fn')).toBeUndefined();
    expect(logger.entries).toEqual([
      {
        level: 'warn',
        message: 'factory failed; serving stale value',
        fields: { component: 'cache-manager', key: 'k', error: 'Error: source down' },
      },
      {
        level: 'warn',
        message: 'factory value cannot be serialized; not cached',
        fields: { component: 'cache-manager', key: 'fn' },
      },
    ]);
  });

  it('publishes factory runs on the noa:cache-manager:factory diagnostics channel', async () => {
    const seen: unknown[] = [];
    const listener = (message: unknown) => seen.push(message);
    diagnosticsChannel.subscribe('noa:cache-manager:factory', listener);
    try {
      const cache = make();
      await cache.getOrSet('traced', () => 1);
      await cache.getOrSet('failing', () => Promise.reject(new Error('x'))).catch(() => {});
    } finally {
      diagnosticsChannel.unsubscribe('noa:cache-manager:factory', listener);
    }
    expect(seen).toEqual([
      expect.objectContaining({ key: 'traced', ok: true }),
      expect.objectContaining({ key: 'failing', ok: false }),
    ]);
  });

  it('exposes metrics with tier labels', async () => {
    const registry = new Registry();
    const cache = make({ registry });
    await cache.getOrSet('k', () => 1);
    await cache.getOrSet('k', () => 1);
    const text = await registry.metrics();
    expect(text).toContain('noa_cache_manager_requests_total{cache="cache",tier="l1",result="hit"} 1');
    expect(text).toContain('noa_cache_manager_requests_total{cache="cache",tier="l1",result="miss"} 1');
    expect(text).toContain('noa_cache_manager_factory_runs_total{cache="cache",result="ok"} 1');
  });

  it('labels an expired L1 entry stale, whether read by get or getMany', async () => {
    const registry = new Registry();
    const clock = new ManualClock(0);
    const cache = make({ registry, clock, ttlMs: 1_000, graceMs: 60_000 });
    await cache.set('k', 1);
    clock.advance(2_000);
    expect(await cache.get('k')).toBeUndefined();
    expect(await cache.getMany(['k', 'absent'])).toEqual([undefined, undefined]);
    const text = await registry.metrics();
    expect(text).toContain('noa_cache_manager_requests_total{cache="cache",tier="l1",result="stale"} 2');
    expect(text).toContain('noa_cache_manager_requests_total{cache="cache",tier="l1",result="miss"} 1');
  });

  it.each(['lru', 'lfu'] as const)(
    'keeps the L1 entries and bytes gauges current through deletes, expiry and clear (%s)',
    async (policy) => {
      const registry = new Registry();
      const clock = new ManualClock(0);
      const cache = make({ registry, clock, l1: { policy } });
      const gauges = async () => {
        const text = await registry.metrics();
        const read = (name: string) =>
          Number(
            text
              .split('\n')
              .find((line) => line.startsWith(`${name}{cache="cache",tier="l1"} `))
              ?.split(' ')[1],
          );
        return { entries: read('noa_cache_manager_entries'), bytes: read('noa_cache_manager_stored_bytes') };
      };
      await cache.set('a', 'value a');
      await cache.set('b', 'value b', { ttlMs: 1_000 });
      await cache.set('c', 'value c', { tags: ['t'] });
      await cache.set('d', 'value d');
      const full = await gauges();
      expect(full.entries).toBe(4);
      await cache.delete('a');
      expect((await gauges()).entries).toBe(3);
      clock.advance(2_000);
      expect(await cache.get('b')).toBeUndefined(); // dropped from L1 once past its grace
      expect((await gauges()).entries).toBe(2);
      await cache.deleteByTag('t');
      expect((await gauges()).entries).toBe(1);
      await cache.clear();
      expect(await gauges()).toEqual({ entries: 0, bytes: 0 });
    },
  );

  it('times one L1 lookup in 64 into the latency histogram, under the l1 tier', async () => {
    const registry = new Registry();
    const cache = make({ registry });
    const count = async () => {
      const line = (await registry.metrics())
        .split('\n')
        .find((text) =>
          text.startsWith(
            'noa_cache_manager_operation_duration_seconds_count{cache="cache",tier="l1",operation="get"}',
          ),
        );
      return line === undefined ? 0 : Number(line.split(' ').at(-1));
    };
    for (let index = 0; index < 63; index += 1) await cache.getOrSet('k', () => 1);
    expect(await count()).toBe(0);
    await cache.getOrSet('k', () => 1);
    expect(await count()).toBe(1);
    for (let index = 0; index < 64; index += 1) await cache.get('k');
    expect(await count()).toBe(2);
  });
});

describe('get() never throws synchronously', () => {
  it('rejects when the injected clock throws, as an async get did', async () => {
    let broken = false;
    const cache = make({
      clock: {
        now: () => {
          if (broken) throw new Error('clock broke');
          return 0;
        },
      },
    });
    await cache.set('k', 1);
    broken = true;
    let result: Promise<unknown> | undefined;
    expect(() => {
      result = cache.get('k');
    }).not.toThrow();
    await expect(result).rejects.toThrow('clock broke');
  });
});

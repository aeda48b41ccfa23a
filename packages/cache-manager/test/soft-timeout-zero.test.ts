import { ConfigError, ManualClock } from '@noa/core';
import { afterEach, describe, expect, it } from 'vitest';
import { Cache, type CacheOptions, FactoryTimeoutError } from '../src/index.js';

const caches: Cache[] = [];
function make(options: CacheOptions = {}): Cache {
  const cache = new Cache(options);
  caches.push(cache);
  return cache;
}
afterEach(async () => {
  await Promise.all(caches.splice(0).map((cache) => cache.close()));
});

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

/**
 * bentocache's default `timeout: 0`: a caller with a value in grace gets it at once, and the
 * factory refreshes the key behind it. Without a value in grace the caller waits as usual.
 */
describe('softTimeoutMs: 0', () => {
  it('serves the value in grace at once and caches the refresh when it lands', async () => {
    const clock = new ManualClock(0);
    const cache = make({ clock, ttlMs: 100, graceMs: 10_000, softTimeoutMs: 0 });
    await cache.getOrSet('k', () => 1);
    clock.advance(200);
    const slow = deferred<number>();
    let runs = 0;
    const factory = () => {
      runs += 1;
      return slow.promise;
    };
    // The factory never settles before these calls return: they cannot have waited for it.
    await expect(cache.getOrSet('k', factory)).resolves.toBe(1);
    await expect(cache.getOrSet('k', factory)).resolves.toBe(1);
    expect(runs).toBe(1);
    slow.resolve(2);
    await tick();
    await expect(cache.getOrSet('k', factory)).resolves.toBe(2);
    expect(runs).toBe(1);
  });

  it('still waits for the factory when nothing is in grace (hardTimeoutMs bounds that wait)', async () => {
    const clock = new ManualClock(0);
    const cache = make({ clock, ttlMs: 100, softTimeoutMs: 0 });
    const slow = deferred<number>();
    const call = cache.getOrSet('k', () => slow.promise);
    setTimeout(() => slow.resolve(7), 20);
    await expect(call).resolves.toBe(7);
  });

  it('is accepted per call, where a factory finishing at once still serves the stale value', async () => {
    const clock = new ManualClock(0);
    const cache = make({ clock, ttlMs: 100, graceMs: 10_000 });
    await cache.getOrSet('k', () => 1);
    clock.advance(200);
    await expect(cache.getOrSet('k', async () => 2, { softTimeoutMs: 0 })).resolves.toBe(1);
    await tick();
    expect(await cache.get('k')).toBe(2);
  });

  it('backs off after the background run fails: the failing source is not called on every hit', async () => {
    const clock = new ManualClock(0);
    const cache = make({ clock, ttlMs: 100, graceMs: 60_000, graceBackoffMs: 5_000, softTimeoutMs: 0 });
    await cache.getOrSet('k', () => 1);
    clock.advance(200);
    let runs = 0;
    const failing = async () => {
      runs += 1;
      throw new Error('source down');
    };
    await expect(cache.getOrSet('k', failing)).resolves.toBe(1);
    await tick();
    await expect(cache.getOrSet('k', failing)).resolves.toBe(1);
    await tick();
    expect(runs).toBe(1);
    clock.advance(5_001);
    await expect(cache.getOrSet('k', failing)).resolves.toBe(1);
    await tick();
    expect(runs).toBe(2);
  });

  it('logs a run that fails after its callers stopped waiting once, naming the key', async () => {
    const warnings: { message: string; fields?: Record<string, unknown> }[] = [];
    const logger = {
      debug() {},
      info() {},
      warn: (message: string, fields?: Record<string, unknown>) => void warnings.push({ message, fields }),
      error() {},
    };
    const clock = new ManualClock(0);
    const cache = make({ clock, logger, ttlMs: 100, graceMs: 60_000, softTimeoutMs: 0 });
    await cache.getOrSet('k', () => 1);
    clock.advance(200);
    const failing = deferred<number>();
    await expect(cache.getOrSet('k', () => failing.promise)).resolves.toBe(1);
    failing.reject(new Error('source down'));
    await tick();
    await tick();
    // One event, one warning: it says the callers were served the value in grace and that the
    // key backs off (it was also logged as an anonymous "background cache work failed").
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.message).toMatch(/served the stale value.*backing off/);
    expect(warnings[0]!.fields).toMatchObject({ key: 'k', error: 'Error: source down' });
  });

  it('logs a run that fails after its caller timed out with nothing in grace once, naming the key', async () => {
    const warnings: { message: string; fields?: Record<string, unknown> }[] = [];
    const logger = {
      debug() {},
      info() {},
      warn: (message: string, fields?: Record<string, unknown>) => void warnings.push({ message, fields }),
      error() {},
    };
    const cache = make({ logger, hardTimeoutMs: 5 });
    const failing = deferred<number>();
    await expect(cache.getOrSet('k', () => failing.promise)).rejects.toBeInstanceOf(FactoryTimeoutError);
    failing.reject(new Error('source down'));
    await tick();
    await tick();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.message).toMatch(/factory failed after its callers stopped waiting/);
    expect(warnings[0]!.fields).toMatchObject({ key: 'k', error: 'Error: source down' });
  });

  it('refuses a negative softTimeoutMs, per call and as a default', async () => {
    expect(() => make({ softTimeoutMs: -1 })).toThrow(ConfigError);
    const cache = make();
    await expect(cache.getOrSet('k', () => 1, { softTimeoutMs: -1 })).rejects.toBeInstanceOf(ConfigError);
  });
});

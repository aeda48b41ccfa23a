import { ConfigError, ManualClock } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { type AlgorithmName, algorithmNames, createRateLimiter, MemoryStore } from '../src/index.js';

const start = 1_700_000_000_000;
const global = { limit: 100, windowMs: 60_000 };
const login = { algorithm: 'token-bucket' as const, limit: 3, windowMs: 900_000 };

describe('several limiters on one store', () => {
  it('refuses a second limiter with other limits under the same prefix, naming prefix and both limiters', async () => {
    const store = new MemoryStore();
    const api = createRateLimiter({ store, limits: [global] });
    let error: unknown;
    try {
      createRateLimiter({ store, limits: [login] });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).fields).toEqual(['prefix']);
    expect((error as Error).message).toMatch(/prefix "rl"/);
    expect((error as Error).message).toMatch(/fixed-window 100 per 60000 ms/);
    expect((error as Error).message).toMatch(/token-bucket 3 per 900000 ms/);
    expect((error as Error).message).toMatch(/own prefix/);
    // The same limits under other prefixes, or on another store, are fine.
    const own = createRateLimiter({ store, limits: [login], prefix: 'login' });
    const other = createRateLimiter({ store: new MemoryStore(), limits: [login] });
    await Promise.all([api.close(), own.close(), other.close()]);
  });

  it('refuses a role rule that differs from another limiter’s rule of that role', async () => {
    const store = new MemoryStore();
    const first = createRateLimiter({
      store,
      limits: [global],
      roles: { admin: [{ limit: 5, windowMs: 1_000 }] },
    });
    expect(() =>
      createRateLimiter({ store, limits: [global], roles: { admin: [{ limit: 6, windowMs: 1_000 }] } }),
    ).toThrow(/role "admin"/);
    await first.close();
  });

  it('lets limiters with identical limits share one quota, and close() releases the claim', async () => {
    const clock = new ManualClock(start);
    const store = new MemoryStore({ clock });
    const a = createRateLimiter({ store, limits: [{ limit: 3, windowMs: 60_000 }], clock });
    const b = createRateLimiter({ store, limits: [{ limit: 3, windowMs: 60_000 }], clock });
    await a.check('k');
    expect((await b.check('k')).remaining).toBe(1);
    await a.close();
    // b still holds the claim.
    expect(() => createRateLimiter({ store, limits: [login], clock })).toThrow(ConfigError);
    await b.close();
    // A config reload: the old limiters closed, the new one with other limits starts.
    const reloaded = createRateLimiter({ store, limits: [login], clock });
    await reloaded.close();
  });

  it('keeps counters when only `limit` changes, starts fresh when the algorithm or window changes', async () => {
    const clock = new ManualClock(start);
    const store = new MemoryStore({ clock });
    const before = createRateLimiter({ store, limits: [{ limit: 100, windowMs: 60_000 }], clock });
    for (let index = 0; index < 5; index += 1) await before.check('k');
    await before.close();
    const raised = createRateLimiter({ store, limits: [{ limit: 200, windowMs: 60_000 }], clock });
    expect((await raised.check('k')).remaining).toBe(194);
    await raised.close();
    const longer = createRateLimiter({ store, limits: [{ limit: 200, windowMs: 120_000 }], clock });
    expect((await longer.check('k')).remaining).toBe(199);
    await longer.close();
    const bucket = createRateLimiter({ store, limits: [{ ...login, limit: 200 }], clock });
    const result = await bucket.check('k');
    expect(result.remaining).toBe(199);
    await bucket.close();
  });

  it.each(
    algorithmNames.flatMap((first) =>
      algorithmNames.filter((second) => second !== first).map((second) => [first, second] as const),
    ),
  )('a %s state is never read as a %s one (memory store, one key, no namespace)', (first, second) => {
    const clock = new ManualClock(start);
    const store = new MemoryStore({ clock });
    const policy = (algorithm: AlgorithmName, limit: number) => ({
      name: 'default',
      algorithm,
      limit,
      windowMs: 60_000,
    });
    for (let index = 0; index < 3; index += 1) store.consumeOne('k', [policy(first, 100)], 1, undefined);
    for (const limits of [[policy(second, 3)], [policy(second, 3), policy(first, 100)]]) {
      const outcome = store.consumeOne('k', limits, 1, undefined);
      for (const decision of outcome.decisions) {
        expect(Number.isFinite(decision.remaining)).toBe(true);
        expect(Number.isFinite(decision.resetMs)).toBe(true);
      }
      expect(outcome.decisions[0]!.allowed).toBe(true);
    }
    const single = store.consumeSingle('k2', policy(first, 100), 1);
    expect(single?.allowed).toBe(true);
    const read = store.consumeSingle('k2', policy(second, 3), 1);
    expect(read).toMatchObject({ allowed: true, remaining: 2 });
  });
});

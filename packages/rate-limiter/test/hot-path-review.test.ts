import diagnosticsChannel from 'node:diagnostics_channel';
import { ManualClock } from '@noa/core';
import fc from 'fast-check';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createRateLimiter, InvalidCheckInputError, type LimitPolicy, MemoryStore } from '../src/index.js';

/** A time aligned to a minute, far from 0 (as a real clock's). */
const start = 1_700_000_040_000;

describe('check() of a live key (consumeHot) against the general path', () => {
  it('leaves the expiry the general path leaves for a check less than 1 ms before its window ends (fractional clock)', async () => {
    // Two limiters on stores of their own, the same checks: `hot` through check(), `general`
    // through checkSync(), which never takes consumeHot.
    const clock = new ManualClock(start);
    const hot = createRateLimiter({ limits: [{ limit: 10, windowMs: 60_000 }], clock });
    const general = createRateLimiter({ limits: [{ limit: 10, windowMs: 60_000 }], clock });
    const end = start + 60_000;
    clock.set(end - 2);
    await hot.check('k');
    general.checkSync('k');
    // Half a millisecond before the window ends: the key is kept 1 ms more (#extend's minimum).
    clock.set(end - 0.5);
    expect(await hot.check('k')).toEqual(general.checkSync('k'));
    // After the window's end, before that minimum: the key still has state on the general path.
    clock.set(end + 0.25);
    expect(await general.reset('k')).toBe(true);
    expect(await hot.reset('k')).toBe(true);
    await hot.close();
    await general.close();
  });

  it('keeps the same eviction order as the general path (fractional clock, maxKeys)', async () => {
    const clock = new ManualClock(start);
    const limits = [{ limit: 10, windowMs: 60_000 }];
    const hotStore = new MemoryStore({ clock, maxKeys: 2 });
    const generalStore = new MemoryStore({ clock, maxKeys: 2 });
    const hot = createRateLimiter({ limits, clock, store: hotStore });
    const general = createRateLimiter({ limits, clock, store: generalStore });
    const both = async (key: string) => {
      const expected = general.checkSync(key);
      expect(await hot.check(key)).toEqual(expected);
      return expected;
    };
    const end = start + 60_000;
    clock.set(end - 5);
    await both('a');
    // Half a millisecond before the window ends: 'a' is kept until 0.5 ms after it.
    clock.set(end - 0.5);
    await both('a');
    clock.set(end + 0.1);
    await both('b');
    // 'a' still lives on the general path: its new window's first point, in its old place.
    clock.set(end + 0.25);
    await both('a');
    // A third key evicts the least recently moved: 'a' on the general path, so 'b' keeps its count.
    await both('c');
    expect((await both('b')).remaining).toBe(8);
    await both('a');
    await hot.close();
    await general.close();
    await hotStore.close();
    await generalStore.close();
  });

  it('leaves nothing behind for a refused empty key: no namespace made again in the store', async () => {
    // The same calls on two stores: `hot` limiters through check(), `general` ones through
    // checkSync(). Four limiters (four namespaces) share each store of 2 keys; a new key's
    // namespace being empty, the key evicts from the other namespaces in their order in the store.
    const clock = new ManualClock(start);
    const limits = [{ limit: 10, windowMs: 60_000 }];
    const run = async (via: 'check' | 'checkSync') => {
      const store = new MemoryStore({ clock, maxKeys: 2 });
      const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((prefix) =>
        createRateLimiter({ limits, clock, store, prefix }),
      );
      const check = async (limiter: typeof a, key: string) =>
        via === 'check' ? await limiter!.check(key) : limiter!.checkSync(key);
      await check(a, 'x');
      await check(b, 'y');
      await a!.resetAll();
      // Refused: an empty key is no key.
      if (via === 'check') await expect(a!.check('')).rejects.toThrow(InvalidCheckInputError);
      else expect(() => a!.checkSync('')).toThrow(InvalidCheckInputError);
      await check(c, 'z');
      // Evicts b's 'y' (the oldest namespace), leaving c's 'z' and a's 'w'.
      await check(a, 'w');
      // Evicts from the namespace made first of the two: c's (a's was made again after it).
      await check(d, 'v');
      const answers = [(await check(a, 'w')).remaining, (await check(c, 'z')).remaining];
      for (const limiter of [a, b, c, d]) await limiter!.close();
      await store.close();
      return answers;
    };
    const general = await run('checkSync');
    expect(general).toEqual([8, 9]);
    expect(await run('check')).toEqual(general);
  });

  it('counts and publishes a hot check as the general path does (checks_total, noa:rate-limiter:check)', async () => {
    const run = async (via: 'check' | 'checkSync') => {
      const registry = new Registry();
      const published: unknown[] = [];
      const listener = (message: unknown) => published.push(structuredClone(message));
      diagnosticsChannel.subscribe('noa:rate-limiter:check', listener);
      const clock = new ManualClock(start);
      const limiter = createRateLimiter({ limits: [{ limit: 3, windowMs: 60_000 }], clock, registry });
      try {
        for (const gap of [0, 10, 10, 10, 60_000, 5]) {
          clock.advance(gap);
          if (via === 'check') await limiter.check('k');
          else limiter.checkSync('k');
        }
      } finally {
        diagnosticsChannel.unsubscribe('noa:rate-limiter:check', listener);
        await limiter.close();
      }
      const text = await registry.metrics();
      return {
        published,
        checks: text.split('\n').filter((line) => line.startsWith('noa_rate_limiter_checks_total{')),
      };
    };
    const general = await run('checkSync');
    expect(general.published).toHaveLength(6);
    expect(general.checks.length).toBeGreaterThan(0);
    expect(await run('check')).toEqual(general);
  });

  it('answers, expires and evicts as the general path for any sequence of calls (clocks that go back or are fractional, three limiters per store, small maxKeys)', async () => {
    // Checks the hot path decided (it must decide some for the comparison to mean anything).
    let decidedHot = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(1, 3, 50, 1_000),
        fc.constantFrom(3, 7, 1_000, 60_000, 3_600_000),
        fc.constantFrom(0, 5, start),
        fc.array(
          fc.record({
            gap: fc.oneof(
              { arbitrary: fc.integer({ min: -30, max: 40 }), weight: 3 },
              { arbitrary: fc.double({ min: -2, max: 3, noNaN: true }), weight: 2 },
              { arbitrary: fc.constantFrom(0.25, 0.5, 0.75), weight: 2 },
              { arbitrary: fc.integer({ min: 0, max: 2_500 }), weight: 1 },
            ),
            key: fc.constantFrom('a', 'a', 'a', 'b', 'c', ''),
            which: fc.constantFrom(0, 0, 0, 0, 1, 2),
            op: fc.constantFrom(
              'check',
              'check',
              'check',
              'check',
              'check',
              'check',
              'checkCost',
              'checkSync',
              'reset',
              'resetAll',
              'peek',
              'refund',
              'penalize',
              'block',
              'unblock',
            ),
          }),
          { minLength: 10, maxLength: 80 },
        ),
        async (limit, windowMs, begin, steps) => {
          // A clock that may go back (ManualClock refuses to).
          let now = begin;
          const clock = { now: () => now };
          const limits: LimitPolicy[] = [{ name: 'default', algorithm: 'fixed-window', limit, windowMs }];
          const hotStore = new MemoryStore({ clock, maxKeys: 2 });
          const generalStore = new MemoryStore({ clock, maxKeys: 2 });
          const consumeHot = hotStore.consumeHot.bind(hotStore);
          hotStore.consumeHot = (...args) => {
            const decision = consumeHot(...args);
            if (decision !== undefined) decidedHot += 1;
            return decision;
          };
          const make = (store: MemoryStore) =>
            ['p', 'q', 'r'].map((prefix) => createRateLimiter({ limits, clock, store, prefix }));
          const hot = make(hotStore);
          const general = make(generalStore);
          const settle = async <T>(run: () => T | Promise<T>) => {
            try {
              return { value: await run() };
            } catch (error) {
              return { error: (error as Error).constructor.name };
            }
          };
          try {
            for (const { gap, key, which, op } of steps) {
              now += gap;
              const h = hot[which]!;
              const g = general[which]!;
              let pair: [unknown, unknown];
              switch (op) {
                case 'check':
                  pair = [await settle(() => h.check(key)), await settle(() => g.checkSync(key))];
                  break;
                case 'checkSync':
                  // The general path on both sides, between the hot side's hot checks.
                  pair = [await settle(() => h.checkSync(key)), await settle(() => g.checkSync(key))];
                  break;
                case 'checkCost':
                  pair = [await settle(() => h.check(key, 2)), await settle(() => g.checkSync(key, 2))];
                  break;
                case 'reset':
                  pair = [await settle(() => h.reset(key)), await settle(() => g.reset(key))];
                  break;
                case 'resetAll':
                  pair = [await settle(() => h.resetAll()), await settle(() => g.resetAll())];
                  break;
                case 'peek':
                  pair = [await settle(() => h.peek(key)), await settle(() => g.peek(key))];
                  break;
                case 'refund':
                  pair = [await settle(() => h.refund(key)), await settle(() => g.refund(key))];
                  break;
                case 'penalize':
                  pair = [await settle(() => h.penalize(key, 1)), await settle(() => g.penalize(key, 1))];
                  break;
                case 'block':
                  pair = [await settle(() => h.block(key, 5)), await settle(() => g.block(key, 5))];
                  break;
                default:
                  pair = [await settle(() => h.unblock(key)), await settle(() => g.unblock(key))];
              }
              expect(pair[0]).toEqual(pair[1]);
              expect(hotStore.size).toBe(generalStore.size);
            }
            // Every key still held, with its state (a cost-0 look that counts nothing).
            for (const index of [0, 1, 2])
              for (const key of ['a', 'b', 'c'])
                expect(await hot[index]!.peek(key)).toEqual(await general[index]!.peek(key));
          } finally {
            for (const limiter of [...hot, ...general]) await limiter.close();
          }
        },
      ),
      { numRuns: Number(process.env.HOT_PATH_RUNS ?? 400) },
    );
    expect(decidedHot).toBeGreaterThan(100);
  });

  it('decides, expires and evicts as the general path for any sequence of checks on fractional clocks', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(1, 3, 50),
        fc.constantFrom(7, 1_000, 60_000),
        fc.constantFrom(0, start),
        fc.array(
          fc.record({
            gap: fc.oneof(
              fc.integer({ min: 0, max: 40 }),
              fc.double({ min: 0, max: 3, noNaN: true }),
              fc.integer({ min: 0, max: 2_500 }),
            ),
            key: fc.constantFrom('a', 'b', 'c', 'd'),
            op: fc.constantFrom('check', 'check', 'check', 'check', 'reset', 'peek'),
          }),
          { minLength: 10, maxLength: 80 },
        ),
        async (limit, windowMs, begin, steps) => {
          const clock = new ManualClock(begin);
          const limits: LimitPolicy[] = [{ name: 'default', algorithm: 'fixed-window', limit, windowMs }];
          const hotStore = new MemoryStore({ clock, maxKeys: 3 });
          const generalStore = new MemoryStore({ clock, maxKeys: 3 });
          const hot = createRateLimiter({ limits, clock, store: hotStore });
          const general = createRateLimiter({ limits, clock, store: generalStore });
          try {
            for (const { gap, key, op } of steps) {
              clock.advance(gap);
              if (op === 'check') expect(await hot.check(key)).toEqual(general.checkSync(key));
              else if (op === 'reset') expect(await hot.reset(key)).toBe(await general.reset(key));
              else expect(await hot.peek(key)).toEqual(await general.peek(key));
              expect(hotStore.size).toBe(generalStore.size);
            }
          } finally {
            await hot.close();
            await general.close();
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

import { ConfigError, delay, ManualClock } from '@noa/core';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { getOrSetOptionsSchema, setOptionsSchema } from '../src/cache-options.js';
import { getOrSetOptionRules, passes, setOptionRules } from '../src/call-options.js';
import { Cache, type CacheOptions, type GetOrSetOptions } from '../src/index.js';

const caches: Cache[] = [];
function make(options: CacheOptions = {}): Cache {
  const cache = new Cache(options);
  caches.push(cache);
  return cache;
}
afterEach(async () => {
  await Promise.all(caches.splice(0).map((cache) => cache.close()));
});

/** The ConfigError fields of a rejected promise or a throwing call. */
async function fieldsOf(run: () => unknown): Promise<string[]> {
  try {
    await run();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).fields.sort();
  }
  throw new Error('expected a ConfigError');
}

// Values near every rule's edges, plus things of the wrong type.
const optionValue = fc.oneof(
  fc.constant(undefined),
  fc.constant(null),
  fc.integer({ min: -3, max: 3 }),
  fc.constantFrom(
    0.5,
    -0,
    1.5,
    2 ** 31 - 1,
    2 ** 31,
    2 ** 53,
    Number.MAX_SAFE_INTEGER,
    Number.NaN,
    Number.POSITIVE_INFINITY,
  ),
  fc.double(),
  fc.string({ maxLength: 3 }),
  fc.boolean(),
  fc.array(fc.string({ maxLength: 3 }), { maxLength: 3 }),
  fc.array(fc.oneof(fc.string(), fc.integer()), { maxLength: 3 }),
  // Tags with a lone surrogate (refused) beside a whole emoji (kept).
  fc.array(fc.constantFrom('t', '\uD800', 'x\uDFFF', '😀'), { maxLength: 3 }),
  fc.constant({}),
);
const optionName = fc.constantFrom(
  'ttlMs',
  'graceMs',
  'tags',
  'softTimeoutMs',
  'hardTimeoutMs',
  'lockTimeoutMs',
  'earlyRefreshBeta',
  'refreshThresholdMs',
  'ttl',
  'grace',
);
const optionsObject = fc.dictionary(optionName, optionValue, { maxKeys: 4 });

describe('per-call option checks', () => {
  it('agree with the zod schemas (getOrSet and set) on any input', () => {
    fc.assert(
      fc.property(fc.oneof(optionsObject, optionValue), (options) => {
        expect(passes(options, getOrSetOptionRules)).toBe(getOrSetOptionsSchema.safeParse(options).success);
        expect(passes(options, setOptionRules)).toBe(setOptionsSchema.safeParse(options).success);
      }),
      { numRuns: 2_000 },
    );
  });

  it('rejects a bad getOrSet option with ConfigError naming the field, without running the factory', async () => {
    const cache = make();
    let runs = 0;
    const factory = () => {
      runs += 1;
      return 'v';
    };
    const bad: [GetOrSetOptions, string[]][] = [
      [{ ttlMs: -1 }, ['ttlMs']],
      [{ ttlMs: 1.5 }, ['ttlMs']],
      [{ graceMs: -5 }, ['graceMs']],
      [{ softTimeoutMs: -1 }, ['softTimeoutMs']],
      [{ softTimeoutMs: 0.5 }, ['softTimeoutMs']],
      [{ hardTimeoutMs: '100' as unknown as number }, ['hardTimeoutMs']],
      [{ lockTimeoutMs: Number.POSITIVE_INFINITY }, ['lockTimeoutMs']],
      [{ earlyRefreshBeta: Number.NaN }, ['earlyRefreshBeta']],
      [{ tags: ['ok', 3 as unknown as string] }, ['tags.1']],
      [{ ttl: '1h' } as unknown as GetOrSetOptions, ['ttl']],
      [{ ttlMs: 0, softTimeoutMs: -1 }, ['softTimeoutMs', 'ttlMs']],
    ];
    for (const [options, fields] of bad) {
      expect(await fieldsOf(() => cache.getOrSet('k', factory, options))).toEqual(fields);
    }
    expect(runs).toBe(0);
  });

  it('refuses timeouts a Node timer cannot wait for (over 2^31 - 1 ms), which would fire at once', async () => {
    const cache = make();
    let runs = 0;
    const slow = async () => {
      runs += 1;
      await delay(20);
      return 'v';
    };
    for (const field of ['softTimeoutMs', 'hardTimeoutMs', 'lockTimeoutMs'] as const) {
      expect(await fieldsOf(() => cache.getOrSet(`k:${field}`, slow, { [field]: 2 ** 31 }))).toEqual([field]);
    }
    expect(runs).toBe(0);
    // The largest a timer takes is a real bound, not an instant timeout.
    expect(await cache.getOrSet('k', slow, { hardTimeoutMs: 2 ** 31 - 1 })).toBe('v');
    for (const [options, field] of [
      [{ softTimeoutMs: 2 ** 31 }, 'softTimeoutMs'],
      [{ hardTimeoutMs: 2 ** 31 }, 'hardTimeoutMs'],
      [{ operationTimeoutMs: 2 ** 31 }, 'operationTimeoutMs'],
      [{ lock: { timeoutMs: 2 ** 31 } }, 'lock.timeoutMs'],
      [{ lock: { pollMs: 2 ** 31 } }, 'lock.pollMs'],
      // The timer that abandons an early refresh waits leaseMs: past 2^31 - 1 it fired at once,
      // so every refresh was abandoned (not cached, one warning each).
      [{ lock: { leaseMs: 2 ** 31 } }, 'lock.leaseMs'],
    ] as const) {
      expect(await fieldsOf(() => new Cache(options))).toEqual([field]);
    }
  });

  it('caches an early refresh under the longest lease a timer takes (lock.leaseMs 2^31 - 1)', async () => {
    const clock = new ManualClock(0);
    const cache = make({ clock, ttlMs: 100, refreshThresholdMs: 50, lock: { leaseMs: 2 ** 31 - 1 } });
    await cache.getOrSet('k', () => 1);
    clock.advance(70);
    expect(
      await cache.getOrSet('k', async () => {
        await delay(20);
        return 2;
      }),
    ).toBe(1);
    await delay(60);
    expect(await cache.get('k')).toBe(2);
  });

  it('accepts good and undefined options and applies them', async () => {
    const cache = make();
    const options: GetOrSetOptions = {
      ttlMs: 1_000,
      graceMs: 0,
      tags: ['t'],
      softTimeoutMs: undefined,
      hardTimeoutMs: 50,
      lockTimeoutMs: 10,
      earlyRefreshBeta: 0,
    };
    expect(await cache.getOrSet('k', () => 'v', options)).toBe('v');
    expect(await cache.deleteByTag('t')).toBe(1);
  });

  it('validates set, setMany, wrap (once, when wrapping) and warm options', async () => {
    const cache = make();
    expect(await fieldsOf(() => cache.set('k', 1, { ttlMs: -1 }))).toEqual(['ttlMs']);
    expect(
      await fieldsOf(() =>
        cache.setMany([
          { key: 'a', value: 1 },
          { key: 'b', value: 2, graceMs: -1 },
        ]),
      ),
    ).toEqual(['1.graceMs']);
    expect(await fieldsOf(() => cache.setMany([{ key: 3 as unknown as string, value: 1 }]))).toEqual([
      '0.key',
    ]);
    expect(await fieldsOf(() => cache.wrap((id: number) => id, String, { hardTimeoutMs: -1 }))).toEqual([
      'hardTimeoutMs',
    ]);
    expect(await fieldsOf(() => cache.warm(['a'], () => 1, { concurrency: 0 }))).toEqual(['concurrency']);
    // Nothing was written by the rejected calls.
    expect(await cache.getMany(['k', 'a', 'b'])).toEqual([undefined, undefined, undefined]);
    const wrapped = cache.wrap(
      (id: number) => id * 2,
      (id) => `double:${id}`,
      { ttlMs: 1_000 },
    );
    expect(await wrapped(21)).toBe(42);
  });

  it('wrap rejects (never throws) when the key function throws or returns no string', async () => {
    const cache = make();
    const byId = cache.wrap(
      async (id: number) => `user ${id}`,
      (id: number) => {
        if (id < 0) throw new Error('negative id');
        return (id === 0 ? undefined : `user:${id}`) as string;
      },
    );
    let thrown: unknown;
    let rejected: unknown;
    try {
      await byId(-1).catch((error: unknown) => {
        rejected = error;
      });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeUndefined();
    expect(String(rejected)).toContain('negative id');
    expect(await fieldsOf(() => byId(0))).toEqual(['keyFn']);
    // A key such as "undefined" would be shared by every function whose key function slipped.
    const other = cache.wrap(
      async () => 'other function',
      () => undefined as unknown as string,
    );
    expect(await fieldsOf(() => other())).toEqual(['keyFn']);
    expect(await byId(7)).toBe('user 7');
  });

  it('wrap takes the wrapper’s parameters from fn: optional and rest ones stay so with an untyped key function (tsc checks the calls)', async () => {
    const cache = make();
    // As the README writes key functions: parameters typed by context. They were an inference
    // site of the parameters too, so `lang` became required: `greet(1)` did not compile.
    const greet = cache.wrap(
      async (id: number, lang?: string) => `${lang ?? 'en'}:${id}`,
      (id, lang) => `greet:${id}:${lang ?? 'en'}`,
    );
    const count = cache.wrap(
      async (id: number, step?: number) => id + (step ?? 1),
      (id, step) => `count:${id}:${step ?? 1}`,
    );
    const sum = cache.wrap(
      async (...values: number[]) => values.reduce((total, value) => total + value, 0),
      (...values) => `sum:${values.join()}`,
    );
    expect(await greet(1)).toBe('en:1');
    expect(await greet(1, 'fr')).toBe('fr:1');
    expect(await count(1)).toBe(2);
    expect(await sum()).toBe(0);
    expect(await sum(1, 2)).toBe(3);
    // The key function still gets fn's parameter types, and a wrong call is still refused.
    cache.wrap(
      async (id: number) => id,
      // @ts-expect-error: a key function whose parameters fn's arguments do not fit
      (id: string) => id,
    );
    // @ts-expect-error: more arguments than fn takes
    void greet(1, 'fr', 'extra').catch(() => undefined);
  });

  it('wrap: the key alone names the entry (README): wrappers whose keys coincide share it, namespaces or prefixes keep them apart', async () => {
    const cache = make();
    const joined = (sku: string, currency: string) => `${sku}:${currency}`;
    const price = cache.wrap(
      async (sku: string, currency: string) => `price of ${sku} in ${currency}`,
      joined,
    );
    const stock = cache.wrap(
      async (sku: string, currency: string) => `stock of ${sku} (${currency})`,
      joined,
    );
    expect(await price('a:b', 'c')).toBe('price of a:b in c');
    // Same key: another function's entry, other arguments' entry.
    expect(await stock('a:b', 'c')).toBe('price of a:b in c');
    expect(await price('a', 'b:c')).toBe('price of a:b in c');
    // A prefix and an unambiguous encoding, or a namespace per function, keep them apart.
    const encoded = (sku: string, currency: string) => `price:${JSON.stringify([sku, currency])}`;
    const apart = cache.wrap(async (sku: string, currency: string) => `${sku}|${currency}`, encoded);
    expect(await apart('a', 'b:c')).toBe('a|b:c');
    expect(await apart('a:b', 'c')).toBe('a:b|c');
    const inNamespace = cache
      .namespace('stock')
      .wrap(async (sku: string, _currency: string) => `stock of ${sku}`, joined);
    expect(await inNamespace('a:b', 'c')).toBe('stock of a:b');
  });
});

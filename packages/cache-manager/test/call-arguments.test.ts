import { ConfigError } from '@noa/core';
import { afterAll, describe, expect, it } from 'vitest';
import { Cache } from '../src/index.js';

/** Calls with arguments of the wrong type, as JavaScript callers (or `as any`) make them. */
// biome-ignore lint/suspicious/noExplicitAny: the point is to bypass the types.
type Loose = any;

/** The ConfigError a call throws or rejects with: its fields and message. */
async function refusal(call: () => unknown): Promise<{ fields: string[]; message: string }> {
  let error: unknown;
  try {
    await call();
  } catch (caught) {
    error = caught;
  }
  expect(error).toBeInstanceOf(ConfigError);
  return { fields: (error as ConfigError).fields, message: (error as ConfigError).message };
}

describe('call arguments of the wrong type are refused at the call with ConfigError naming the field', () => {
  const cache = new Cache();
  const loose = cache as Loose;
  afterAll(() => cache.close());

  it('a key that is not a string, in every keyed method (no "[object Object]" or "undefined" entry)', async () => {
    for (const bad of [undefined, {}, 42, null]) {
      expect((await refusal(() => loose.get(bad))).fields).toEqual(['key']);
      expect((await refusal(() => loose.has(bad))).fields).toEqual(['key']);
      expect((await refusal(() => loose.getLocal(bad))).fields).toEqual(['key']);
      expect((await refusal(() => loose.set(bad, 1))).fields).toEqual(['key']);
      expect((await refusal(() => loose.delete(bad))).fields).toEqual(['key']);
      expect((await refusal(() => loose.expire(bad))).fields).toEqual(['key']);
      expect((await refusal(() => loose.getOrSet(bad, () => 1))).fields).toEqual(['key']);
      expect((await refusal(() => loose.namespace('ns').get(bad))).fields).toEqual(['key']);
      expect((await refusal(() => loose.getMany(['a', bad]))).fields).toEqual(['keys.1']);
      expect((await refusal(() => loose.deleteMany([bad]))).fields).toEqual(['keys.0']);
      expect((await refusal(() => loose.expireMany([bad]))).fields).toEqual(['keys.0']);
      expect((await refusal(() => loose.getOrSetMany([bad], () => [1]))).fields).toEqual(['keys.0']);
    }
    expect((await refusal(() => loose.getMany('ab'))).fields).toEqual(['keys']);
    expect(await cache.get('[object Object]')).toBeUndefined();
    expect(await cache.get('42')).toBeUndefined();
    expect(cache.stats().l1.entries).toBe(0);
  });

  it('warm: keys that are a string (iterable, so each character was warmed as a key), not iterable, or hold a non-string', async () => {
    const loaded: unknown[] = [];
    const loader = (key: unknown) => {
      loaded.push(key);
      return key;
    };
    // A TypeScript caller can pass a string too: a string is an `Iterable<string>`.
    expect((await refusal(() => cache.warm('user:1', loader))).fields).toEqual(['keys']);
    for (const bad of [42, undefined, null, {}]) {
      expect((await refusal(() => loose.warm(bad, loader))).fields).toEqual(['keys']);
    }
    for (const bad of [undefined, {}, 42, null]) {
      expect((await refusal(() => loose.warm(['a', bad], loader))).fields).toEqual(['keys.1']);
      expect((await refusal(() => loose.warm(new Set(['a', bad]), loader))).fields).toEqual(['keys.1']);
    }
    // Refused before any load: no key of a refused call is warmed.
    expect(loaded).toEqual([]);
    expect(cache.stats().l1.entries).toBe(0);
    // Any other iterable of strings is keys, as before.
    const report = await cache.warm(new Set(['s1', 's2']), loader);
    expect(report.loaded).toBe(2);
    await cache.deleteMany(['s1', 's2']);
  });

  it('getOrSet refuses a lone-surrogate key with L1 full of its neighbours, forced, in a namespace; its factory never runs', async () => {
    const local = new Cache();
    const ns = local.namespace('n');
    let calls = 0;
    const factory = () => {
      calls += 1;
      return 1;
    };
    const high = 'x\uD83D'; // a lone high surrogate
    const low = '\uDE00x'; // a lone low surrogate
    for (const key of ['x', 'x\uD83D\uDE00', '\uD83D\uDE00x', ':x', 'n', ':n::x']) {
      await local.getOrSet(key, factory);
      await ns.getOrSet(key, factory);
    }
    const before = calls;
    for (const bad of [high, low, `${low}${high}`, '\uD83D', '\uDE00', ':\uDE00']) {
      expect((await refusal(() => local.getOrSet(bad, factory))).fields).toEqual(['key']);
      expect((await refusal(() => ns.getOrSet(bad, factory))).fields).toEqual(['key']);
      expect((await refusal(() => local.getOrSet(bad, factory, { forceFresh: true }))).fields).toEqual([
        'key',
      ]);
    }
    expect(calls).toBe(before);
    // The well-formed keys are still served from L1 without a call.
    expect(await local.getOrSet('x\uD83D\uDE00', factory)).toBe(1);
    expect(calls).toBe(before);
    await local.close();
  });

  it('a key, tag or name holding a lone surrogate, in every configuration (in Redis it would be another key’s: test/integration/ill-formed-keys.test.ts)', async () => {
    const bad = 'half of 😀'.slice(0, 9); // ends in a lone high surrogate
    expect((await refusal(() => cache.get(bad))).fields).toEqual(['key']);
    expect((await refusal(() => cache.has(bad))).fields).toEqual(['key']);
    expect((await refusal(() => cache.getLocal(bad))).fields).toEqual(['key']);
    expect((await refusal(() => cache.set(bad, 1))).fields).toEqual(['key']);
    expect((await refusal(() => cache.pull(bad))).fields).toEqual(['key']);
    expect((await refusal(() => cache.ttl(bad))).fields).toEqual(['key']);
    expect((await refusal(() => cache.expire(bad))).fields).toEqual(['key']);
    expect((await refusal(() => cache.getOrSet(bad, () => 1))).fields).toEqual(['key']);
    expect((await refusal(() => cache.getMany(['a', bad]))).fields).toEqual(['keys.1']);
    expect((await refusal(() => cache.deleteMany([bad]))).fields).toEqual(['keys.0']);
    expect((await refusal(() => cache.getOrSetMany([bad], () => [1]))).fields).toEqual(['keys.0']);
    expect((await refusal(() => cache.warm(['a', bad], () => 1))).fields).toEqual(['keys.1']);
    expect(
      (
        await refusal(() =>
          cache.setMany([
            { key: 'a', value: 1 },
            { key: bad, value: 1 },
          ]),
        )
      ).fields,
    ).toEqual(['1.key']);
    expect(
      (
        await refusal(() =>
          cache.wrap(
            async () => 1,
            () => bad,
          )(),
        )
      ).fields,
    ).toEqual(['keyFn']);
    expect((await refusal(() => cache.set('a', 1, { tags: ['ok', bad] }))).fields).toEqual(['tags.1']);
    expect((await refusal(() => cache.getOrSet('a', () => 1, { tags: [bad] }))).fields).toEqual(['tags.0']);
    expect((await refusal(() => cache.deleteByTag(bad))).fields).toEqual(['tags.0']);
    expect((await refusal(() => cache.expireByTag(['ok', bad]))).fields).toEqual(['tags.1']);
    expect((await refusal(() => cache.namespace(bad))).fields).toEqual(['name']);
    expect((await refusal(() => new Cache({ namespace: bad }))).fields).toEqual(['namespace']);
    expect((await refusal(() => new Cache({ prefix: `${bad}:` }))).fields).toEqual(['prefix']);
    // A surrogate pair (the whole emoji) is well-formed.
    await cache.set('😀', 1, { tags: ['😀'] });
    expect(await cache.deleteByTag('😀')).toBe(1);
    expect(cache.stats().l1.entries).toBe(0);
  });

  it('a get with a bad key rejects, never throws synchronously', () => {
    const pending = loose.get(undefined) as Promise<unknown>;
    expect(pending).toBeInstanceOf(Promise);
    return expect(pending).rejects.toBeInstanceOf(ConfigError);
  });

  it('tags that are not a string or a list of strings', async () => {
    for (const bad of [5, undefined, [5], { tag: 'a' }]) {
      expect((await refusal(() => loose.deleteByTag(bad))).fields[0]).toMatch(/^tags/);
      expect((await refusal(() => loose.expireByTag(bad))).fields[0]).toMatch(/^tags/);
    }
  });

  it('a factory or loader that is not a function, at the call (not a FactoryError)', async () => {
    expect((await refusal(() => loose.getOrSet('k', 'value'))).fields).toEqual(['factory']);
    expect((await refusal(() => loose.getOrSetMany(['k'], 'value'))).fields).toEqual(['factory']);
    expect((await refusal(() => loose.warm(['k'], 'value'))).fields).toEqual(['loader']);
  });

  it('wrap without a key function, or with a function that is none, fails at wrap, and its options are named as wrap’s', async () => {
    expect((await refusal(() => loose.wrap(async () => 1))).fields).toEqual(['keyFn']);
    expect((await refusal(() => loose.wrap('fn', () => 'k'))).fields).toEqual(['fn']);
    const options = await refusal(() =>
      loose.wrap(
        async () => 1,
        () => 'k',
        { ttl: 5 },
      ),
    );
    expect(options.message).toMatch(/wrap/);
    expect(options.message).not.toMatch(/getOrSet/);
    const many = await refusal(() => loose.getOrSetMany(['k'], () => [1], { ttl: 5 }));
    expect(many.message).toMatch(/getOrSetMany/);
  });
});

import { ConfigError } from '@noa/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Cache } from '../src/index.js';

/** Names and keys of a few characters, `:` included, so that a collision is likely if one can happen. */
const name = fc.string({ maxLength: 4, unit: fc.constantFrom('a', 'b', ':', '*') });
const key = fc.string({ maxLength: 4, unit: fc.constantFrom('a', 'b', ':') });

describe('namespaces', () => {
  it('refuse a name with the ":" separator, or an empty one, with ConfigError naming it', () => {
    const cache = new Cache();
    for (const bad of ['a:', ':b', '', 'a:b']) {
      expect(() => cache.namespace(bad), JSON.stringify(bad)).toThrow(ConfigError);
      expect(() => cache.namespace('ok').namespace(bad), JSON.stringify(bad)).toThrow(ConfigError);
    }
    try {
      cache.namespace('a:');
    } catch (error) {
      expect((error as ConfigError).fields).toEqual(['name']);
    }
    for (const bad of ['a:', ':', 'a:b']) {
      expect(() => new Cache({ namespace: bad }), bad).toThrow(ConfigError);
    }
    // `a:` + `b` and `a` + `:b` were both the key `a::b`.
    expect(() => new Cache({ namespace: 'a:' })).toThrow(/namespace/);
  });

  it('of different names never share a key, whatever the keys (a name that could is refused)', async () => {
    const cache = new Cache();
    const view = (text: string) => {
      try {
        return cache.namespace(text);
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        return undefined;
      }
    };
    await fc.assert(
      fc.asyncProperty(name, name, key, key, async (first, second, firstKey, secondKey) => {
        fc.pre(first !== second);
        const [one, other] = [view(first), view(second)];
        if (one === undefined || other === undefined) return;
        await cache.clear();
        await one.set(firstKey, 'first');
        expect(await other.get(secondKey)).toBeUndefined();
        await other.clear();
        expect(await one.get(firstKey)).toBe('first');
      }),
      { numRuns: 500 },
    );
    await cache.close();
  });
});

describe('namespace paths', () => {
  const paths: readonly (readonly string[])[] = [
    [],
    ['a'],
    ['b'],
    ['a', 'b'],
    ['a', 'a'],
    ['b', 'a'],
    ['a', 'b', 'a'],
  ];
  const pathIndex = fc.integer({ min: 0, max: paths.length - 1 });
  const anyKey = fc.string({ maxLength: 5, unit: fc.constantFrom('a', 'b', ':') });

  it('never share a key with the root or with each other, and a clear reaches exactly its path and the paths under it', async () => {
    const cache = new Cache();
    const view = (path: readonly string[]) => path.reduce((parent, name) => parent.namespace(name), cache);
    const startsWith = (path: readonly string[], start: readonly string[]) =>
      start.every((name, index) => path[index] === name);
    await fc.assert(
      fc.asyncProperty(
        pathIndex,
        anyKey,
        pathIndex,
        anyKey,
        pathIndex,
        async (first, firstKey, second, secondKey, cleared) => {
          fc.pre(first !== second || firstKey !== secondKey);
          await cache.clear();
          await view(paths[first]!).set(firstKey, 'first');
          expect(await view(paths[second]!).get(secondKey)).toBeUndefined();
          await view(paths[cleared]!).clear();
          const gone = startsWith(paths[first]!, paths[cleared]!);
          expect(await view(paths[first]!).get(firstKey)).toBe(gone ? undefined : 'first');
        },
      ),
      { numRuns: 1_000 },
    );
    await cache.close();
  });
});

describe('prefix', () => {
  it('refused for lacking the final ":", names the rule and the fixed prefix (a deployment upgrading with prefix "cache")', () => {
    let refused: unknown;
    try {
      new Cache({ prefix: 'cache' });
    } catch (error) {
      refused = error;
    }
    expect(refused).toBeInstanceOf(ConfigError);
    expect((refused as ConfigError).fields).toEqual(['prefix']);
    expect((refused as ConfigError).message).toMatch(/must end with ":"/);
    expect((refused as ConfigError).message).toContain('"cache:"');
    expect((refused as ConfigError).message).toMatch(/CHANGELOG/);
  });

  it('close() of a view closes the whole cache: the root and every other view reject with ClosedError', async () => {
    const cache = new Cache();
    const a = cache.namespace('a');
    const b = cache.namespace('b');
    await a.set('k', 1);
    await a.close();
    await expect(cache.get('k')).rejects.toMatchObject({ code: 'NOA_CLOSED' });
    await expect(b.set('k', 2)).rejects.toMatchObject({ code: 'NOA_CLOSED' });
    expect(cache.health().status).toBe('down');
  });
});

import { ConfigError } from '@noa/core';
import { afterEach, describe, expect, it } from 'vitest';
import { Cache, type CacheOptions, type EdgePurger } from '../src/index.js';

const caches: Cache[] = [];
function make(options: CacheOptions = {}): Cache {
  const cache = new Cache(options);
  caches.push(cache);
  return cache;
}
afterEach(async () => {
  await Promise.all(caches.splice(0).map((cache) => cache.close()));
});

/**
 * bentocache keeps a namespace's tags to that namespace (its tag marks live under the
 * namespace's prefix): a multi-tenant app migrating with `namespace(tenant)` and a shared tag
 * name must not delete other tenants' entries.
 */
describe('tag scope', () => {
  async function tenants(options: CacheOptions = {}) {
    const cache = make(options);
    const a = cache.namespace('a');
    const b = cache.namespace('b');
    await a.set('k', 'a', { tags: ['products'] });
    await b.set('k', 'b', { tags: ['products'] });
    await cache.set('k', 'root', { tags: ['products'] });
    await a.getOrSet('computed', () => 'a2', { tags: ['products'] });
    await a.getOrSet('context', (ctx) => {
      ctx.setOptions({ tags: ['products'] });
      return 'a3';
    });
    await a.setMany([{ key: 'many', value: 'a4', tags: ['products'] }]);
    return { cache, a, b };
  }

  it("by default, a namespace's deleteByTag deletes only its own entries (as bentocache)", async () => {
    const { cache, a, b } = await tenants();
    expect(await a.deleteByTag('products')).toBe(4);
    expect(await a.getMany(['k', 'computed', 'context', 'many'])).toEqual([
      undefined,
      undefined,
      undefined,
      undefined,
    ]);
    expect(await b.get('k')).toBe('b');
    expect(await cache.get('k')).toBe('root');
    // The root's tag is the root's: not its namespaces'.
    expect(await cache.deleteByTag('products')).toBe(1);
    expect(await b.get('k')).toBe('b');
  });

  it('expireByTag is scoped the same way', async () => {
    const { cache, a, b } = await tenants();
    expect(await a.expireByTag('products')).toBe(4);
    expect(await a.get('k')).toBeUndefined();
    expect(await b.get('k')).toBe('b');
    expect(await cache.get('k')).toBe('root');
  });

  it("tagScope: 'global' keeps one tag across namespaces (the earlier behaviour)", async () => {
    const { cache, a, b } = await tenants({ tagScope: 'global' });
    expect(await a.deleteByTag('products')).toBe(6);
    expect(await b.get('k')).toBeUndefined();
    expect(await cache.get('k')).toBeUndefined();
  });

  it('a root tag starting with ":" is not a namespace\'s tag', async () => {
    const cache = make();
    await cache.namespace('a').set('x', 'ns', { tags: ['t'] });
    await cache.set('y', 'root', { tags: [':a::t'] });
    expect(await cache.deleteByTag(':a::t')).toBe(1);
    expect(await cache.namespace('a').get('x')).toBe('ns');
  });

  it('the edge purger gets the tags as the caller named them', async () => {
    const purged: string[][] = [];
    const purger: EdgePurger = {
      purgeTags: async (tags) => {
        purged.push([...tags]);
      },
    };
    const cache = make({ edge: { purger, tags: ['products'] } });
    await cache.namespace('a').set('k', 1, { tags: ['products'] });
    await cache.namespace('a').deleteByTag(['products', 'other']);
    expect(purged).toEqual([['products']]);
  });

  it('refuses an unknown tagScope', () => {
    expect(() => make({ tagScope: 'tenant' as 'global' })).toThrow(ConfigError);
  });
});

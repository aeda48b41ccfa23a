import { describe, expect, it } from 'vitest';
import { CacheEngine } from '../src/cache-engine.js';
import { cacheOptionsSchema } from '../src/cache-options.js';

/**
 * The L1 tag index (tag → keys, for `deleteByTag` without scans) must name only the tags of
 * the entries L1 holds: a key rewritten with other tags, or an entry too big for L1, must
 * not stay in it, or a long-running process that keeps retagging keys grows it forever.
 */
describe('L1 tag index', () => {
  const engine = () => new CacheEngine(cacheOptionsSchema.parse({ l1: { maxBytes: 10_000 } }));

  it('forgets the tags a key was rewritten without', async () => {
    const cache = engine();
    for (let version = 0; version < 1_000; version += 1) {
      await cache.write('feed', { version }, { tags: [`version:${version}`, 'feeds'] });
    }
    expect([...cache.tagIndex.keys()].sort()).toEqual(['feeds', 'version:999']);
    await cache.write('feed', { version: 'untagged' }, {});
    expect(cache.tagIndex.size).toBe(0);
    // Only the tags it carries delete it.
    await cache.write('feed', 1, { tags: ['a'] });
    await cache.write('feed', 2, { tags: ['b'] });
    expect(await cache.deleteByTags(['a'])).toBe(0);
    expect((await cache.get('feed'))?.value).toBe(2);
    await cache.close();
  });

  it('does not index an entry too big for L1', async () => {
    const cache = engine();
    await cache.write('small', 'x', { tags: ['t'] });
    await cache.write('small', 'y'.repeat(20_000), { tags: ['t', 'big'] });
    expect(cache.l1.size).toBe(0);
    expect(cache.tagIndex.size).toBe(0);
    await cache.close();
  });

  it('does not index an entry its policy evicted on the way in (the soonest to expire, under ttl)', async () => {
    const byEntries = new CacheEngine(cacheOptionsSchema.parse({ l1: { policy: 'ttl', maxEntries: 10 } }));
    const byBytes = new CacheEngine(cacheOptionsSchema.parse({ l1: { policy: 'ttl', maxBytes: 1_000 } }));
    for (const cache of [byEntries, byBytes]) {
      for (let index = 0; index < 10; index += 1)
        await cache.write(`long:${index}`, 'x', { ttlMs: 3_600_000 });
      // Each short-lived key is the soonest to expire: the policy drops it as it is stored.
      for (let index = 0; index < 1_000; index += 1)
        await cache.write(`short:${index}`, 'y', { ttlMs: 1_000, tags: [`t${index}`, 'short'] });
      const held = [...cache.l1.keys()];
      const indexed = new Set([...cache.tagIndex.values()].flatMap((keys) => [...keys]));
      expect([...indexed].filter((key) => !held.includes(key))).toEqual([]);
      const heldTags = new Set(held.flatMap((key) => [...(cache.l1.peek(key)?.tags ?? [])]));
      expect([...cache.tagIndex.keys()].sort()).toEqual([...heldTags].sort());
      await cache.close();
    }
  });

  it('forgets the tags of entries that leave L1', async () => {
    const cache = engine();
    await cache.write('k', 1, { tags: ['t'] });
    await cache.delete(['k']);
    expect(cache.tagIndex.size).toBe(0);
    await cache.close();
  });
});

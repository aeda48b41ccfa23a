import { describe, expect, it } from 'vitest';
import { redisUp, sharedRedisCaches } from './helpers.js';

/**
 * Cache objects that share one ioredis client (two libraries, or namespaces made as separate
 * caches, on one prefix) send one key's commands to Redis in the order they were called. Plain
 * writes of a turn are batched per cache: a delete sent at once by another cache used to reach
 * Redis before the earlier set's batch, which then brought the deleted value back.
 */
describe.skipIf(!redisUp)('the order of calls across caches on one client (Redis)', () => {
  const { open } = sharedRedisCaches('write-order');
  const options = { ttlMs: 60_000, bus: false as const };

  it('a delete on one cache after a set on another leaves the key deleted', async () => {
    const a = await open(options);
    const b = await open(options);
    const c = await open(options);
    const set = a.set('deleted', 'A');
    await b.delete('deleted');
    await set;
    expect(await c.get('deleted')).toBeUndefined();
  });

  it('of two sets of one key on two caches in one turn, the later one stays', async () => {
    const a = await open(options);
    const b = await open(options);
    const c = await open(options);
    const writes = [a.set('other', 'A'), b.set('twice', 'B'), a.set('twice', 'A-later')];
    await Promise.all(writes);
    expect(await c.get('twice')).toBe('A-later');
  });

  it('a delete on an unbatched cache after a set on a batched one leaves the key deleted', async () => {
    const a = await open(options);
    const b = await open({ ...options, batching: false });
    const c = await open(options);
    const set = a.set('unbatched', 'A');
    await b.delete('unbatched');
    await set;
    expect(await c.get('unbatched')).toBeUndefined();
  });

  it('a deleteByTag on one cache after a tagged set on another deletes the value', async () => {
    const a = await open(options);
    const b = await open(options);
    const c = await open(options);
    const set = a.set('tagged', 'A', { tags: ['t'] });
    await b.deleteByTag('t');
    await set;
    expect(await c.get('tagged')).toBeUndefined();
  });

  it('namespaces of one cache share its batches: a delete after a set leaves the key deleted', async () => {
    const root = await open(options);
    const c = await open(options);
    const set = root.namespace('ns').set('key', 'A');
    await root.namespace('ns').delete('key');
    await set;
    expect(await c.namespace('ns').get('key')).toBeUndefined();
  });
});

/**
 * `writeMode: 'background'`: `setMany` resolves once L1 has every item, its L2 writes go out
 * 1,024 at a time, each chunk once the previous one was answered. A delete, tag delete or
 * clear made after it resolved must still win over the chunks not sent yet.
 */
describe.skipIf(!redisUp)('background setMany, then an invalidation (Redis)', () => {
  const { open } = sharedRedisCaches('write-order-many');
  const options = { ttlMs: 60_000, bus: false as const, writeMode: 'background' as const };
  const items = (name: string, tags: string[] = []) =>
    Array.from({ length: 2_500 }, (_, index) => ({ key: `${name}:${index}`, value: index, tags }));

  it('a delete of an item of a later chunk leaves it deleted', async () => {
    const writer = await open(options);
    await writer.setMany(items('many-deleted'));
    await writer.deleteMany(['many-deleted:0', 'many-deleted:1500', 'many-deleted:2499']);
    await writer.close();
    const reader = await open(options);
    expect(await reader.getMany(['many-deleted:0', 'many-deleted:1500', 'many-deleted:2499'])).toEqual([
      undefined,
      undefined,
      undefined,
    ]);
  });

  it('a set of an item of a later chunk stays', async () => {
    const writer = await open(options);
    await writer.setMany(items('many-rewritten'));
    await writer.set('many-rewritten:2000', 'later');
    await writer.close();
    const reader = await open(options);
    expect(await reader.get('many-rewritten:2000')).toBe('later');
    expect(await reader.get('many-rewritten:2001')).toBe(2001);
  });

  it('an expire of an item of a later chunk: the writer keeps it stale, L2 does not have it', async () => {
    const writer = await open({ ...options, graceMs: 60_000 });
    await writer.setMany(items('many-expired'));
    await writer.expire('many-expired:2000');
    // The writer's L1 has it, stale: served by a getOrSet whose factory fails.
    const served = await writer.getOrSet('many-expired:2000', () => {
      throw new Error('source down');
    });
    expect(served).toBe(2000);
    await writer.close();
    const reader = await open(options);
    expect(await reader.getMany(['many-expired:2000', 'many-expired:2001'])).toEqual([undefined, 2001]);
  });

  it('a deleteByTag or clear of later chunks leaves nothing behind', async () => {
    const writer = await open(options);
    await writer.setMany(items('many-tagged', ['many']));
    await writer.deleteByTag('many');
    await writer.namespace('many-ns').setMany(items('k'));
    await writer.namespace('many-ns').clear();
    await writer.close();
    const reader = await open(options);
    expect(await reader.getMany(['many-tagged:0', 'many-tagged:1500', 'many-tagged:2499'])).toEqual([
      undefined,
      undefined,
      undefined,
    ]);
    expect(await reader.namespace('many-ns').getMany(['k:0', 'k:1500', 'k:2499'])).toEqual([
      undefined,
      undefined,
      undefined,
    ]);
  });
});

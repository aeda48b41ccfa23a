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

import { describe, expect, it } from 'vitest';
import { readBatchMaxKeys } from '../../src/l2/redis-tier.js';
import { redisUp, sharedRedisCaches } from './helpers.js';

/**
 * Cache objects that share one ioredis client read their own and each other's writes: a read
 * called after a write (of another cache on the client, gathered for the end of the turn) reaches
 * Redis after that write's SET, however the read goes out (a full read batch sent at once, a read
 * batch begun before the write, a getMany, an unbatched cache's GET).
 */
describe.skipIf(!redisUp)('reads after a write of another cache on one client (Redis)', () => {
  const { open } = sharedRedisCaches('read-order');
  const options = { ttlMs: 60_000, bus: false as const };
  /** `count` other keys, read with the key under test to fill a read batch. */
  const others = (label: string, count: number) => Array.from({ length: count }, (_, at) => `${label}-${at}`);

  it('a get that fills a read batch (sent at once) reads the set called before it', async () => {
    const a = await open(options);
    const b = await open(options);
    const set = a.set('full', 'A');
    const reads = [...others('full', readBatchMaxKeys - 1), 'full'].map((key) => b.get(key));
    expect((await Promise.all(reads)).at(-1)).toBe('A');
    await set;
  });

  it('a get joining a read batch begun before the set reads the set', async () => {
    const a = await open(options);
    const b = await open(options);
    const first = b.get('begun-other');
    const set = a.set('begun', 'A');
    const read = b.get('begun');
    expect(await read).toBe('A');
    await Promise.all([first, set]);
  });

  it('a getMany reads the set called before it', async () => {
    const a = await open(options);
    const b = await open(options);
    const set = a.set('many', 'A');
    expect(await b.getMany(['many'])).toEqual(['A']);
    await set;
  });

  it('a get on an unbatched cache reads the set a batched one called before it', async () => {
    const a = await open(options);
    const b = await open({ ...options, batching: false });
    const set = a.set('unbatched', 'A');
    expect(await b.get('unbatched')).toBe('A');
    await set;
  });

  it('a get reads the getOrSet write (compare-and-set) of another cache called before it', async () => {
    const a = await open(options);
    const b = await open(options);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const computed = a.getOrSet('computed', async () => {
      await gate;
      return 'A';
    });
    await new Promise((resolve) => setTimeout(resolve, 50)); // the factory waits on the gate
    release();
    // Microtasks only: the factory's value is written (its compare-and-set gathered for the end
    // of this turn) before the reads are called, still in this turn.
    for (let hop = 0; hop < 20; hop += 1) await null;
    const reads = [...others('computed', readBatchMaxKeys - 1), 'computed'];
    const read = await Promise.all(reads.map((key) => b.get(key)));
    expect(read.at(-1)).toBe('A');
    expect(await computed).toBe('A');
  });
});

import { describe, expect, it } from 'vitest';
import { redisUp, sharedRedisCaches } from './helpers.js';

const { open } = sharedRedisCaches('l2-get');

/**
 * `get` after an L1 miss returns the value itself (`CacheEngine.getValue`), not an entry that
 * `Cache.get` unwraps: the `l1.mode` copy-out and the L1 insert must still happen on that path.
 */
describe.skipIf(!redisUp)('get answered by L2', () => {
  it('reference mode: the value L2 returned is the one L1 then serves', async () => {
    const writer = await open({ bus: false });
    await writer.set('shared', { n: 1 });
    const reader = await open({ bus: false });
    const fromL2 = await reader.get<{ n: number }>('shared');
    expect(fromL2).toEqual({ n: 1 });
    expect(reader.getLocal('shared')).toBe(fromL2);
    expect(reader.stats().hits).toEqual({ l1: 0, l2: 1 });
  });

  it('clone mode: the value L2 returned is a copy, so mutating it leaves L1 unchanged', async () => {
    const writer = await open({ bus: false });
    await writer.set('copied', { n: 1 });
    const reader = await open({ bus: false, l1: { mode: 'clone' } });
    const fromL2 = (await reader.get<{ n: number }>('copied'))!;
    fromL2.n = 2;
    expect(await reader.get('copied')).toEqual({ n: 1 });
    expect(reader.stats().hits).toEqual({ l1: 1, l2: 1 });
  });

  it('a miss in both tiers is undefined and reported once as a miss', async () => {
    const reader = await open({ bus: false });
    const misses: string[] = [];
    reader.on('miss', ({ key }) => misses.push(key));
    expect(await reader.get('absent')).toBeUndefined();
    expect(misses).toEqual(['absent']);
  });
});

import { afterEach, describe, expect, it } from 'vitest';
import { PRUNE_CHANCE, PRUNE_SAMPLE, pruneTagsWithChance, tagsToPrune } from '../src/l2/tag-pruning.js';

describe('tag pruning draws', () => {
  afterEach(() => pruneTagsWithChance(undefined));

  it('prune enough to bound a set: sample × chance above 1 (dead members at 1/(that − 1) of the live)', () => {
    expect(PRUNE_SAMPLE * PRUNE_CHANCE).toBe(4);
  });

  it('draws each tag of a write on its own, so no tag of a multi-tag write is always skipped', () => {
    const draws = [0.5, PRUNE_CHANCE / 2, 0.9, 0];
    let at = 0;
    const draw = () => draws[at++]!;
    expect(tagsToPrune(['a', 'b'], draw)).toEqual(['b']);
    expect(tagsToPrune(['a', 'b'], draw)).toEqual(['b']);
    expect(tagsToPrune(['a', 'b'], () => 0)).toEqual(['a', 'b']);
    expect(tagsToPrune(['a', 'b'], () => PRUNE_CHANCE)).toBeUndefined();
    expect(tagsToPrune([], () => 0)).toBeUndefined();
  });

  it('about one tag write in 16 prunes, with Math.random', () => {
    let pruned = 0;
    for (let write = 0; write < 16_000; write += 1) pruned += tagsToPrune(['t'])?.length ?? 0;
    expect(pruned).toBeGreaterThan(700);
    expect(pruned).toBeLessThan(1_300);
  });

  it('can be turned off or forced for tests, and restored', () => {
    pruneTagsWithChance(0);
    expect(tagsToPrune(['t'], () => 1e-12)).toBeUndefined();
    pruneTagsWithChance(1);
    expect(tagsToPrune(['t'], () => 0.99)).toEqual(['t']);
    pruneTagsWithChance(undefined);
    expect(tagsToPrune(['t'], () => 0.99)).toBeUndefined();
  });
});

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { pickGroup } from '../src/index.js';

describe('pickGroup (smooth weighted round robin)', () => {
  it('gives each group exactly its weight share over a full cycle', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 10 }), { minLength: 1, maxLength: 6 }), (weights) => {
        const groups = weights.map((_, index) => `g${index}`);
        const weightOf = (group: string) => weights[Number(group.slice(1))]!;
        const credits = new Map<string, number>();
        const total = weights.reduce((a, b) => a + b, 0);
        const picks = new Map<string, number>();
        for (let round = 0; round < total * 3; round += 1) {
          const group = pickGroup(groups, weightOf, credits)!;
          picks.set(group, (picks.get(group) ?? 0) + 1);
        }
        for (const [index, weight] of weights.entries()) expect(picks.get(`g${index}`) ?? 0).toBe(weight * 3);
      }),
    );
  });

  it('never starves a group for longer than a cycle', () => {
    const credits = new Map<string, number>();
    const weights: Record<string, number> = { big: 100, small: 1 };
    const picks = Array.from({ length: 202 }, () => pickGroup(['big', 'small'], (g) => weights[g]!, credits));
    expect(picks.filter((group) => group === 'small')).toHaveLength(2);
  });

  it('returns undefined with no candidates', () => {
    expect(pickGroup([], () => 1, new Map())).toBeUndefined();
  });
});

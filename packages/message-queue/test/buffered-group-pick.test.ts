import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type BufferedGroup, pickBufferedGroup } from '../src/providers/buffered-group-pick.js';

const weightsArbitrary = fc.array(fc.integer({ min: 1, max: 10 }), { minLength: 1, maxLength: 6 });

describe('pickBufferedGroup (fair dispatch over per-group buffers)', () => {
  it('gives each always-buffered group exactly its weight share over full cycles', () => {
    fc.assert(
      fc.property(weightsArbitrary, (weights) => {
        const groups = new Map<string, BufferedGroup>(
          weights.map((_, index) => [`g${index}`, { buffered: 1, coming: false }]),
        );
        const weightOf = (group: string) => weights[Number(group.slice(1))]!;
        const credits = new Map<string, number>();
        const total = weights.reduce((a, b) => a + b, 0);
        const picks = new Map<string, number>();
        for (let round = 0; round < total * 2; round += 1) {
          const pick = pickBufferedGroup(groups, weightOf, credits);
          expect(pick && 'take' in pick).toBe(true);
          const group = (pick as { take: string }).take;
          picks.set(group, (picks.get(group) ?? 0) + 1);
        }
        for (const [index, weight] of weights.entries()) expect(picks.get(`g${index}`) ?? 0).toBe(weight * 2);
      }),
    );
  });

  it('keeps a group its turn while its push is on the way: waiting leaves the credits as they were', () => {
    fc.assert(
      fc.property(
        weightsArbitrary,
        fc.array(fc.tuple(fc.nat(3), fc.boolean()), { minLength: 6, maxLength: 6 }),
        fc.array(fc.double({ min: -20, max: 20, noNaN: true }), { minLength: 6, maxLength: 6 }),
        (weights, states, startCredits) => {
          const groups = new Map<string, BufferedGroup>(
            weights.map((_, index) => {
              const [buffered, coming] = states[index]!;
              return [`g${index}`, { buffered, coming: buffered === 0 && coming }];
            }),
          );
          const weightOf = (group: string) => weights[Number(group.slice(1))]!;
          const credits = new Map(weights.map((_, index) => [`g${index}`, startCredits[index]!]));
          const before = new Map(credits);
          const pick = pickBufferedGroup(groups, weightOf, credits);
          const hasWork = [...groups.values()].some((group) => group.buffered > 0 || group.coming);
          if (!hasWork) {
            expect(pick).toBeUndefined();
            return;
          }
          expect(pick).toBeDefined();
          if (pick && 'wait' in pick) {
            expect(groups.get(pick.wait)).toMatchObject({ buffered: 0, coming: true });
            expect(credits).toEqual(before);
          } else if (pick) {
            expect(groups.get(pick.take)!.buffered).toBeGreaterThan(0);
          }
        },
      ),
    );
  });

  it('holds the weights when the heaviest group is often empty but coming', () => {
    // gold's push lags: every other pick finds it empty. Waiting (instead of giving its turn
    // away) keeps the shares of what is actually taken at 3:2:1.
    const weights: Record<string, number> = { gold: 3, silver: 2, bronze: 1 };
    const credits = new Map<string, number>();
    const taken = new Map<string, number>();
    let goldArrives = false;
    for (let step = 0; step < 6_000; step += 1) {
      const groups = new Map<string, BufferedGroup>([
        ['gold', goldArrives ? { buffered: 1, coming: false } : { buffered: 0, coming: true }],
        ['silver', { buffered: 5, coming: false }],
        ['bronze', { buffered: 5, coming: false }],
      ]);
      const pick = pickBufferedGroup(groups, (group) => weights[group]!, credits);
      if (pick && 'take' in pick) taken.set(pick.take, (taken.get(pick.take) ?? 0) + 1);
      goldArrives = !goldArrives;
    }
    const total = [...taken.values()].reduce((a, b) => a + b, 0);
    expect(Math.abs(taken.get('gold')! / total - 3 / 6)).toBeLessThan(0.01);
    expect(Math.abs(taken.get('silver')! / total - 2 / 6)).toBeLessThan(0.01);
    expect(Math.abs(taken.get('bronze')! / total - 1 / 6)).toBeLessThan(0.01);
  });
});

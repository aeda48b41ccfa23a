import { describe, expect, it } from 'vitest';
import { givenUp, HungRuns, type WatchedRun } from '../src/hung-runs.js';

/** The pure rule of `HungRuns` (docs/get-or-set.md, "Runs that never settle") and its log sampling. */

describe('givenUp (pure rule)', () => {
  const run = (fields: Partial<WatchedRun>): WatchedRun => ({
    startedAt: 1_000,
    trustedMs: 100,
    replaced: false,
    waiters: 0,
    ...fields,
  });

  it('never before the trusted time, whoever waits', () => {
    expect(givenUp(run({}), 1_099)).toBe(false);
    expect(givenUp(run({ replaced: true }), 1_099)).toBe(false);
  });

  it('past it: when nobody waits, or when replaced even with waiters; not while waited on and not replaced', () => {
    expect(givenUp(run({}), 1_100)).toBe(true);
    expect(givenUp(run({ replaced: true, waiters: 2 }), 1_100)).toBe(true);
    expect(givenUp(run({ waiters: 1 }), 1_000_000)).toBe(false);
  });

  it('samples the log per key: the 1st, 2nd, 4th, 8th… give-up', () => {
    const runs = new HungRuns<WatchedRun>(1_000, () => {});
    const logged = Array.from({ length: 9 }, () => runs.sampled('k'));
    expect(logged).toEqual([1, 2, undefined, 4, undefined, undefined, undefined, 8, undefined]);
    expect(runs.sampled('other')).toBe(1);
    runs.close();
  });
});

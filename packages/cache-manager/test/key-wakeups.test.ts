import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KeyWakeups } from '../src/key-wakeups.js';

/** 'woken' when `sleep` has resolved once pending callbacks ran, else 'asleep'. */
const state = (sleep: Promise<void>) =>
  Promise.race([
    sleep.then(() => 'woken' as const),
    new Promise<'asleep'>((resolve) => setImmediate(() => resolve('asleep'))),
  ]);

/** What one wait does: `wake` another caller's message about a key, `sleep` its own poll. */
type Step = { kind: 'wake'; key: 'mine' | 'other'; failed: boolean } | { kind: 'sleep' };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    kind: fc.constant('wake' as const),
    key: fc.constantFrom('mine' as const, 'other' as const),
    failed: fc.boolean(),
  }),
  fc.constant({ kind: 'sleep' as const }),
);

describe('KeyWakeups', () => {
  it('a wait sees every wake of its key, asleep or not, and a failed holder stays known', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 30 }), async (steps) => {
        const wakeups = new KeyWakeups();
        const wait = wakeups.watch('mine');
        let wokenSinceSleep = false;
        let failed = false;
        let sleeping: Promise<void> | undefined;
        for (const current of steps) {
          if (current.kind === 'wake') {
            wakeups.wake(current.key, current.failed);
            if (current.key === 'mine') {
              failed ||= current.failed;
              if (sleeping) {
                expect(await state(sleeping)).toBe('woken');
                sleeping = undefined;
              } else {
                wokenSinceSleep = true;
              }
            } else if (sleeping) {
              expect(await state(sleeping)).toBe('asleep');
            }
          } else if (!sleeping) {
            // A wait sleeps once at a time (the read-through loop awaits each sleep).
            const sleep = wait.sleep(1_000_000);
            expect(await state(sleep)).toBe(wokenSinceSleep ? 'woken' : 'asleep');
            if (!wokenSinceSleep) sleeping = sleep;
            wokenSinceSleep = false;
          }
          expect(wait.holderFailed).toBe(failed);
        }
        wait.end();
        if (sleeping) expect(await state(sleeping)).toBe('woken');
      }),
      { numRuns: 200 },
    );
  });

  it('an ended wait hears nothing more; wakeAll wakes every wait without a failure', async () => {
    const wakeups = new KeyWakeups();
    const ended = wakeups.watch('k');
    ended.end();
    wakeups.wake('k', true);
    expect(ended.holderFailed).toBe(false);
    const a = wakeups.watch('a');
    const b = wakeups.watch('b');
    const sleeps = [a.sleep(1_000_000), b.sleep(1_000_000)];
    wakeups.wakeAll();
    expect(await Promise.all(sleeps.map(state))).toEqual(['woken', 'woken']);
    expect([a.holderFailed, b.holderFailed]).toEqual([false, false]);
    a.end();
    b.end();
  });
});

import type { Clock } from '@noa/core';

/**
 * A step back of the wall clock up to this long is let be: NTP steps only past 128 ms and slews
 * below that, and a bound stretched by under a second is within what a bus message takes under
 * load. Past it, what L1 measured on the old time no longer bounds anything (see `watchSteps`).
 */
export const clockStepToleranceMs = 1_000;

/**
 * `clock`, telling `onStepBack` (with how far) when a reading is more than `toleranceMs` before
 * the latest one: a wall clock stepped back (NTP, a VM resumed from a snapshot). The cache's
 * freshness is wall-clock time on purpose (L2's timings are shared by every instance), so a step
 * back keeps entries fresh longer; `l1.maxTtlMs`, which bounds how long L1 trusts a copy whatever
 * the bus lost, must not stretch with it. Costs a comparison per reading.
 */
export function watchSteps(
  clock: Clock,
  onStepBack: (stepMs: number) => void,
  toleranceMs = clockStepToleranceMs,
): Clock {
  let latest = Number.NEGATIVE_INFINITY;
  return {
    now(): number {
      const now = clock.now();
      if (now >= latest) latest = now;
      else if (latest - now > toleranceMs) {
        const stepMs = latest - now;
        // Before the callback: one that reads the clock sees no second step.
        latest = now;
        onStepBack(stepMs);
      }
      return now;
    },
  };
}

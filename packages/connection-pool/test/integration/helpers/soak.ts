import { waitFor } from './wait.js';

/** What the soak tests over reconnects count (soak-reconnect.test.ts, redis-soak-reconnect.test.ts). */
export { activeTimers as timers, listenerCounts as listeners, liveObjects as live } from '@noa/testkit';

/** `cycles` rounds of `work` (settled whatever it throws), each followed by `kill` and a wait for `healthy`. */
export async function soak(
  cycles: number,
  work: (round: number) => Promise<unknown>[],
  kill: () => Promise<unknown>,
  healthy: () => Promise<unknown>,
): Promise<void> {
  for (let round = 0; round < cycles; round += 1) {
    await Promise.allSettled(work(round));
    await kill();
    await waitFor(
      () =>
        healthy().then(
          () => true,
          () => false,
        ),
      10_000,
      'a statement answered again after the kill',
    );
  }
}

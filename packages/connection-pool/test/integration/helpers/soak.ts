import type { EventEmitter } from 'node:events';
import { queryObjects } from 'node:v8';
import { waitFor } from './wait.js';

/** What the soak tests over reconnects count (soak-reconnect.test.ts, redis-soak-reconnect.test.ts). */

/** Listener count per event of `emitter` (events with none left out). */
export function listeners(emitter: EventEmitter): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const name of emitter.eventNames()) {
    const count = emitter.listenerCount(name);
    if (count > 0) counts[String(name)] = count;
  }
  return counts;
}

/** Live objects of `type` after a full garbage collection (queryObjects collects first). */
export function live(type: abstract new (...args: never[]) => unknown): number {
  return queryObjects(type as unknown as new () => unknown, { format: 'count' }) as number;
}

/** Active timers (`Timeout`s) of this process. */
export function timers(): number {
  return process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
}

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

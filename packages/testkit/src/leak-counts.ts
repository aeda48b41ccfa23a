import type { EventEmitter } from 'node:events';
import { queryObjects } from 'node:v8';

/**
 * What soak tests count to show that nothing grows over reconnects or stays after `close()`:
 * listeners on a client, live objects after a full garbage collection, active timers.
 */

/** Listener count per event of `emitter` (events with none left out). */
export function listenerCounts(emitter: EventEmitter): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const name of emitter.eventNames()) {
    const count = emitter.listenerCount(name);
    if (count > 0) counts[String(name)] = count;
  }
  return counts;
}

/**
 * Live objects of `type` (e.g. `Promise`) after a full garbage collection: `v8.queryObjects`
 * collects first. Experimental in Node 22 and 24 (one warning per process).
 */
export function liveObjects(type: abstract new (...args: never[]) => unknown): number {
  return queryObjects(type as unknown as new () => unknown, { format: 'count' }) as number;
}

/** The active resources of this process by kind (`Timeout`, `TCPSocketWrap`, …). */
export function activeResources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}

/** Active timers (`Timeout`s) of this process. */
export function activeTimers(): number {
  return activeResources().Timeout ?? 0;
}

import { delay } from '@noa/core';
import type { JobRecord } from '../src/index.js';

/** Polls `check` every 10 ms until it returns a truthy value, or throws after `timeoutMs`. */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  timeoutMs = 5_000,
  what = 'condition',
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(10);
  }
}

/** Resolves after `ms`. */
export const sleep = (ms: number): Promise<void> => delay(ms);

/** A producer running in the background of a broker-failure test (see {@link startProducer}). */
export interface Producer<T> {
  /** What each acknowledged (resolved) add returned, in order. */
  readonly acknowledged: T[];
  /** Stops after the add in progress is acknowledged. */
  stop(): Promise<void>;
}

/**
 * Calls `add(0)`, `add(1)`, … one at a time (1 ms apart) until `stop()`. A rejected add was not
 * acknowledged: it is retried every 50 ms until it resolves.
 */
export function startProducer<T>(add: (n: number) => Promise<T>): Producer<T> {
  const acknowledged: T[] = [];
  let producing = true;
  const running = (async () => {
    for (let n = 0; producing; n += 1) {
      while (true) {
        try {
          acknowledged.push(await add(n));
          break;
        } catch {
          await sleep(50);
        }
      }
      await sleep(1);
    }
  })();
  return {
    acknowledged,
    stop: async () => {
      producing = false;
      await running;
    },
  };
}

/** A job record with every field at its plainest (unit tests of pieces that take one). */
export function jobRecord(id: string, name = 'job'): JobRecord {
  return {
    id,
    name,
    data: null,
    priority: 0,
    attempts: 1,
    backoff: { type: 'fixed', delayMs: 0 },
    removeOnComplete: false,
    attemptsMade: 0,
    errors: [],
    createdAt: 0,
    availableAt: 0,
  };
}

import { Cron } from 'croner';

/**
 * The fire times of a cron pattern strictly after `afterMs`, up to `count` of them. Uses
 * croner (seconds field supported: `* * * * * *` fires every second). Pure.
 */
export function nextFireTimes(pattern: string, afterMs: number, count = 1, timezone?: string): number[] {
  const cron = new Cron(pattern, { paused: true, ...(timezone ? { timezone } : {}) });
  const times: number[] = [];
  let previous = new Date(afterMs);
  for (let index = 0; index < count; index += 1) {
    const next = cron.nextRun(previous);
    if (!next) break;
    times.push(next.getTime());
    previous = next;
  }
  cron.stop();
  return times;
}

/** The next fire time of a fixed interval anchored at 0 (so every instance agrees), after `afterMs`. */
export function nextIntervalTime(everyMs: number, afterMs: number): number {
  return (Math.floor(afterMs / everyMs) + 1) * everyMs;
}

/**
 * The job id of one tick of a schedule. Every scheduler instance derives the same id for the
 * same tick, so the queue's jobId dedupe lets exactly one of them enqueue it.
 */
export function tickJobId(scheduleName: string, fireAtMs: number): string {
  return `schedule:${scheduleName}:${fireAtMs}`;
}

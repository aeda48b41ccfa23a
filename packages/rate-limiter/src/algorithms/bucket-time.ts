import { isBeyondClockStep } from './clock-step.js';

/**
 * The time a bucket last updated at `updatedAt` counts a request at `now` at: the later of the two.
 * A clock that went back (another server's after a failover, an NTP step) must not move the
 * bucket's time back, or the next check would refill (or leak) the same milliseconds twice. A
 * bucket time further ahead than any clock step back (`maxClockStepBackMs`) is not of a
 * clock to trust: the bucket starts afresh at `now` ({@link isBeyondClockStep}).
 */
export function bucketTime(updatedAt: number, now: number): number {
  if (isBeyondClockStep(updatedAt, now)) return now;
  return Math.max(updatedAt, now);
}

/**
 * The time a bucket last updated at `updatedAt` counts a request at `now` at: the later of the two.
 * A clock that went back (another server's after a failover, an NTP step) must not move the
 * bucket's time back, or the next check would refill (or leak) the same milliseconds twice.
 */
export function bucketTime(updatedAt: number, now: number): number {
  return Math.max(updatedAt, now);
}

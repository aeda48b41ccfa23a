/**
 * The furthest back a clock may step for a key's state to count as it stands (20 minutes). Steps
 * back happen (a failover to a replica whose clock is behind, an NTP step) and are honoured: the
 * request counts in the state's later window, bucket time or newest log entry. But NTP daemons do
 * not step by more than 1000 s (ntpd's panic threshold), and replicas are seconds apart at worst: a
 * state stamped further ahead was written by a clock that was wrong (a misconfigured time server,
 * a VM restored with a wrong date). Trusted, it would refuse the key until the clock caught up,
 * hours or days later, answering a Retry-After as long; the key starts afresh instead, which
 * admits at most one quota more, once per such step.
 */
export const maxClockStepBackMs = 20 * 60_000;

/** Whether a state stamped at `stateTime` is further ahead of `now` than any clock step back. */
export function isBeyondClockStep(stateTime: number, now: number): boolean {
  return stateTime - now > maxClockStepBackMs;
}

import { setTimeout as sleep } from 'node:timers/promises';

/** A clock to read: `Date.now`, an injected clock's `now`, or {@link redisTimeOf} for a store timed by Redis. */
export type WindowClock = () => number | Promise<number>;

/** The subset of an ioredis client (standalone or cluster node) that {@link redisTimeOf} needs. */
export interface RedisTimeSource {
  time(): Promise<[string, string] | (string | number)[]>;
}

/**
 * The clock of a Redis server in ms, as the rate limiter's scripts read it (`TIME`, seconds × 1000
 * + microseconds truncated to ms): fixed windows on Redis are aligned by it, not by `Date.now`.
 */
export function redisTimeOf(client: RedisTimeSource): WindowClock {
  return async () => {
    const [seconds, micros] = await client.time();
    return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  };
}

/**
 * Waits until at least `marginMs` remain of the fixed window (aligned to multiples of `windowMs`
 * since the epoch, as the rate limiter's fixed and sliding windows are) that `clock` is in: if fewer
 * remain, it waits out the rest of the window. Returns the ms left in the window then.
 *
 * A test that makes a call, then expects a later call within `marginMs` to be refused (or to see
 * the same remaining/reset), calls this first: otherwise a window boundary between the two calls
 * (probability about gap / windowMs on every run) starts a fresh window and the test flakes. Read
 * the clock the limiter uses (`redisTimeOf(client)` for a Redis store): the machine's and Redis's
 * clocks may differ by a few ms, and the check is repeated after each wait.
 */
export async function awayFromWindowEdge(
  windowMs: number,
  marginMs: number,
  clock: WindowClock = Date.now,
): Promise<number> {
  if (!(windowMs > 0) || !(marginMs >= 0) || marginMs >= windowMs) {
    throw new RangeError(`awayFromWindowEdge needs 0 <= marginMs (${marginMs}) < windowMs (${windowMs})`);
  }
  for (;;) {
    const now = await clock();
    const leftMs = windowMs - (now % windowMs);
    if (leftMs >= marginMs) return leftMs;
    // Just past the boundary: a clock read a few ms behind the limiter's lands in the new window too.
    await sleep(leftMs + 2);
  }
}

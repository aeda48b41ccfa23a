/**
 * Added to every expiry: the two clocks may run at slightly different rates, so a bound learnt
 * seconds ago can be a little low by now (2 ms is 200 ppm over the ten seconds samples are kept;
 * NTP keeps real clocks far closer). `TIME`'s truncation to whole ms needs no margin: the expiry
 * is rounded up.
 */
export const expiryMarginMs = 2;

/**
 * Samples are kept for one to two periods, so that a drifting or stepped Redis clock is
 * followed within seconds while a short burst of queued (hence loose) samples cannot erase
 * the tight ones.
 */
export const clockPeriodMs = 5_000;

/**
 * How far one Redis server's clock is ahead of this process's monotonic clock
 * (`performance.now()`), learnt from script replies, so that a script call can carry its
 * caller's deadline in Redis time and Redis can skip a call that its caller has given up on.
 *
 * A reply carries the `TIME` Redis read at some instant between the call's send and its reply,
 * so `redisNow − sentAt` is an **upper** bound of the offset (queueing only loosens it), and the
 * smallest recent one is the tightest. An upper bound is the side that errs safely: the expiry it
 * yields is never earlier than the caller's real give-up time, so Redis never skips a check that
 * its caller still waits for; at worst a check that arrives just after the deadline still counts
 * (as it did before expiries existed). The receive time gives a lower bound instead, which would
 * make checks look older than they are and drop live ones.
 */
export class RedisClockOffset {
  /** Smallest sample of the current period, and of the one before (Infinity: none). */
  #current = Number.POSITIVE_INFINITY;
  #previous = Number.POSITIVE_INFINITY;
  #periodStartedAt = Number.NEGATIVE_INFINITY;
  readonly #periodMs: number;

  constructor(periodMs: number = clockPeriodMs) {
    this.#periodMs = periodMs;
  }

  /** Learns from one reply: Redis read `redisNowMs` between local `sentAtMs` and `receivedAtMs`. */
  observe(sentAtMs: number, redisNowMs: number, receivedAtMs: number): void {
    const sample = redisNowMs - sentAtMs;
    if (receivedAtMs - this.#periodStartedAt >= this.#periodMs) {
      this.#previous = this.#current;
      this.#current = sample;
      this.#periodStartedAt = receivedAtMs;
    } else if (sample < this.#current) this.#current = sample;
  }

  /**
   * Learns from a reply that said "expired". If it came back before its caller gave up
   * (`giveUpAtMs`), the bound was provably too small (Redis's clock stepped forward, or another
   * server now answers for these keys): older samples are dropped and this one starts over.
   */
  observeExpired(sentAtMs: number, redisNowMs: number, receivedAtMs: number, giveUpAtMs: number): void {
    if (receivedAtMs <= giveUpAtMs) {
      this.#current = Number.POSITIVE_INFINITY;
      this.#previous = Number.POSITIVE_INFINITY;
      this.#periodStartedAt = Number.NEGATIVE_INFINITY;
    }
    this.observe(sentAtMs, redisNowMs, receivedAtMs);
  }

  /**
   * The Redis time (whole ms) after which a call whose caller gives up at local `giveUpAtMs`
   * is expired; `undefined` before the first reply (the call then carries no expiry).
   */
  expiryFor(giveUpAtMs: number): number | undefined {
    const bound = Math.min(this.#current, this.#previous);
    if (bound === Number.POSITIVE_INFINITY) return undefined;
    return Math.ceil(giveUpAtMs + bound) + expiryMarginMs;
  }
}

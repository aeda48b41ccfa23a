/** The outcome of checking one limit for one request. All times are milliseconds from "now". */
export interface Decision {
  /** The limit's name (as in the `RateLimit` headers). */
  name: string;
  /** The limit's window. */
  windowMs: number;
  /** True when the request fits (and was counted); false when it was refused (and not counted). */
  allowed: boolean;
  /** The limit's quota (points per window, or the bucket's capacity). */
  limit: number;
  /**
   * Token and leaky bucket only: the points they refill (leak) per window, the `limit` option;
   * `limit` above is their capacity, the `burst` option. What `RateLimit-Policy` states as the
   * sustained quota, rather than a burst the bucket admits once.
   */
  rate?: number;
  /** Points still available after this request (never negative). */
  remaining: number;
  /** Time until the quota is fully available again. */
  resetMs: number;
  /**
   * When refused: the earliest time after which the same request would fit. 0 when allowed.
   * `Infinity` when it never will: its cost is above what the limit can ever admit (its capacity,
   * plus what a queueing leaky bucket can delay), so waiting cannot help.
   */
  retryAfterMs: number;
  /** Queueing leaky bucket only: how long the caller must wait before proceeding. 0 otherwise. */
  delayMs: number;
}

/** What an algorithm step returns: the decision and the state to keep (unchanged when refused). */
export interface Step<State> {
  decision: Decision;
  state: State;
}

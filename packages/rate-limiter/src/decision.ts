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
  /** Time until the quota is fully available again (`X-RateLimit-Reset`; 0 when it is). */
  resetMs: number;
  /**
   * Time until more quota than `remaining` is available: when the next point comes back (the
   * `RateLimit` field's `t`, draft-ietf-httpapi-ratelimit-headers-10: "seconds until additional
   * quota is made available"). The fixed window's end; the sliding window's first instant its
   * weighted count frees a point; the sliding log's oldest counted request leaving it; the token
   * bucket's next whole token; the leaky bucket's next conforming request. 0 when the quota is
   * full (nothing more can come back). Never above `resetMs`.
   */
  nextMs: number;
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

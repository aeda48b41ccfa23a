import type { Decision } from './decision.js';

/**
 * Why a check ended as it did. `exceeds-capacity`: the request's cost is above what one of its
 * limits can ever admit (its capacity, plus what a queueing leaky bucket can delay), so it is
 * refused whatever the key's state and whenever it is retried (`retryAfterMs` is `Infinity`);
 * nothing is counted and no violation is recorded.
 */
export type CheckOutcome =
  | 'allowed'
  | 'limited'
  | 'blocked'
  | 'denied'
  | 'allowlisted'
  | 'unlimited'
  | 'exceeds-capacity';

/**
 * Who decided: the store, the local block cache (hot key), the local fallback limiter
 * (`failMode: 'local'`), the fail mode itself (`'open'` admits, `'closed'` refuses, while the
 * store cannot be reached: nothing was counted and nothing is known of the quota, so the
 * middleware sends no rate-limit fields and answers a refusal with 503), or the allow/deny lists.
 */
export type DecisionSource = 'store' | 'local-cache' | 'fallback' | 'fail-mode' | 'lists';

/** One limit's state after a check, as shown in the `RateLimit` headers. */
export type LimitStatus = Decision;

/** The fields every answer to `limiter.check()` has. */
interface ResultFields {
  /** Proceed with the request (after `delayMs` when non-zero). */
  allowed: boolean;
  outcome: CheckOutcome;
  /** The caller's key as given. */
  key: string;
  /**
   * When refused: milliseconds until the same request may succeed; `Infinity` for
   * `exceeds-capacity` (never: reduce the cost rather than wait). JSON has no Infinity (it would
   * write `null`, which clients read as 0, "retry now"), so `JSON.stringify` leaves it out, here
   * and on the limits that say never, as the 413 body leaves out `retryAfter`.
   */
  retryAfterMs: number;
  /** Queueing leaky bucket: milliseconds to wait before proceeding. */
  delayMs: number;
}

/**
 * An answer that knows the key's quota: decided by the store, the local block cache, the local
 * fallback limiter (its own share of the quota) or the allow/deny lists.
 */
export interface QuotaResult extends ResultFields {
  source: Exclude<DecisionSource, 'fail-mode'>;
  /** Every limit of the key, in order. Empty for allow/deny-listed and unlimited callers. */
  limits: LimitStatus[];
  /** The smallest `remaining` over the limits. */
  remaining: number;
  /** `resetMs` of the limit with the smallest `remaining`. */
  resetMs: number;
  /**
   * Outcome `blocked` only: milliseconds until the block itself ends. `retryAfterMs` may be later
   * (a block shorter than its window ends before the window's quota comes back); absent otherwise.
   */
  blockedMs?: number;
}

/**
 * The answer of `failMode: 'open'` (admits) or `'closed'` (refuses, `retryAfterMs` 1 s: when to try
 * the store again) while the store cannot be reached: nothing was counted and nothing is known of
 * the key's quota, so it states none: no `limits`, and `remaining` and `resetMs` are `undefined`
 * (as express-rate-limit's `passOnStoreError` sets no `req.rateLimit`; a made-up full quota reset
 * at once would be logged, shown or acted on as the key's). A cost above what a limit can ever
 * admit is still refused as `exceeds-capacity`: that follows from the policy, not the store.
 */
export interface FailModeResult extends ResultFields {
  source: 'fail-mode';
  outcome: 'allowed' | 'limited' | 'exceeds-capacity';
  /**
   * Empty, but for `exceeds-capacity`: the limits the cost is above, as the policy states them
   * (`retryAfterMs` Infinity, `remaining` 0 for this cost, `resetMs` 0: never), for the 413's names.
   */
  limits: LimitStatus[];
  remaining: undefined;
  resetMs: undefined;
  delayMs: 0;
}

/**
 * The answer to `limiter.check()`. Tell the two kinds apart by `source`: `remaining` and `resetMs`
 * are numbers once `result.source !== 'fail-mode'`.
 */
export type RateLimitResult = QuotaResult | FailModeResult;

/**
 * What the `node:diagnostics_channel` channel `noa:rate-limiter:check` publishes for each check:
 * the result's fields plus `limiter`, the limiter's `name` option (default `'limiter'`), so a
 * subscriber to several limiters tells them apart. A copy, made only while the channel has
 * subscribers: the result `check()` returns has no `limiter` field, and a subscriber that changes
 * the message changes nothing the caller sees. Its JSON leaves out a retry time of never, as the
 * result's does.
 */
export type CheckChannelMessage = RateLimitResult & { limiter: string };

/** The {@link CheckChannelMessage} of `result`, checked by the limiter named `limiter`. */
export function checkChannelMessage(result: RateLimitResult, limiter: string): CheckChannelMessage {
  return withNeverRetryJSON({ ...result, limiter });
}

/**
 * Makes `JSON.stringify(value)` leave out `retryAfterMs` while it is `Infinity` (JSON would write
 * `null`): a non-enumerable `toJSON`, set only on the rare values that say never, so the hot
 * path's objects stay plain and code still reads `Infinity`. It reads the object as it is when
 * serialized, so a caller that replaces "never" with a retry time of its own sees it written.
 * Copies (spread, `structuredClone`) are plain objects without it.
 */
export function withNeverRetryJSON<T extends { retryAfterMs: number }>(value: T): T {
  if (value.retryAfterMs !== Number.POSITIVE_INFINITY) return value;
  Object.defineProperty(value, 'toJSON', { value: neverRetryJSON, enumerable: false });
  return value;
}

/** The `toJSON` of {@link withNeverRetryJSON}: the own enumerable fields, `retryAfterMs` only when finite. */
function neverRetryJSON(this: { retryAfterMs: number }): object {
  if (this.retryAfterMs !== Number.POSITIVE_INFINITY) return { ...this };
  const { retryAfterMs: _never, ...rest } = this;
  return rest;
}

import type { LimitStatus, RateLimitResult } from './result.js';

/** The IETF drafts whose fields `standard` can send (see {@link HeaderOptions.draft}). */
export const headerDrafts = ['draft-10', 'draft-7', 'draft-6'] as const;

/** One of {@link headerDrafts}. */
export type HeaderDraft = (typeof headerDrafts)[number];

/**
 * The formats of the legacy `X-RateLimit-Reset` (see {@link HeaderOptions.legacyReset}): the epoch
 * second the quota is full again (express-rate-limit, GitHub) or the seconds until then
 * (@fastify/rate-limit).
 */
export const legacyResetFormats = ['epoch-seconds', 'delta-seconds'] as const;

/** One of {@link legacyResetFormats}. */
export type LegacyResetFormat = (typeof legacyResetFormats)[number];

/** Which rate-limit headers to send. */
export interface HeaderOptions {
  /** IETF `RateLimit-Policy` and `RateLimit` (of `draft`). Default true. */
  standard?: boolean | undefined;
  /**
   * Which draft of the IETF fields: `'draft-10'` (default: structured fields, one member per
   * limit), or for clients written against express-rate-limit's `standardHeaders`, `'draft-7'`
   * (`RateLimit: limit=100, remaining=99, reset=30`) or `'draft-6'` (`RateLimit-Limit`,
   * `RateLimit-Remaining`, `RateLimit-Reset`), each with `RateLimit-Policy: 100;w=60`, for the
   * tightest limit only (those drafts have one quota per field).
   */
  draft?: HeaderDraft | undefined;
  /** Legacy `X-RateLimit-Limit/Remaining/Reset` (Reset in epoch seconds, as GitHub). Default false. */
  legacy?: boolean | undefined;
  /**
   * What the legacy `X-RateLimit-Reset` states: `'epoch-seconds'` (default, as express-rate-limit
   * and GitHub) or `'delta-seconds'`, the seconds until the quota is full again (as
   * @fastify/rate-limit sends it).
   */
  legacyReset?: LegacyResetFormat | undefined;
}

/** The problem type of a 429 (draft-ietf-httpapi-ratelimit-headers-10, section "Problem Types"). */
export const quotaExceededType = 'https://iana.org/assignments/http-problem-types#quota-exceeded';

/**
 * The problem type of a blocked key's refusal (draft-ietf-httpapi-ratelimit-headers-10, section
 * 5.3, "Abnormal Usage Detected", recommended status 429): a block, automatic (`autoBlock`) or by
 * `limiter.block()`, answers "a pattern of requests that suggest unintentional or malicious
 * behaviour", not a quota spent in the normal way.
 */
export const abnormalUsageDetectedType =
  'https://iana.org/assignments/http-problem-types#abnormal-usage-detected';

/** The statuses a blocked key can be answered with (see {@link ProblemOptions.blockedStatus}). */
export const blockedStatuses = [429, 403] as const;

/** Options of {@link quotaProblem}. */
export interface ProblemOptions {
  /**
   * The status of a blocked key's refusal: 429 (default, as the draft recommends) or 403, as
   * @fastify/rate-limit's `ban` answers a client that kept going over its limit. Either way the
   * body's type is {@link abnormalUsageDetectedType} and it says when to retry (the block ends).
   */
  blockedStatus?: (typeof blockedStatuses)[number] | undefined;
}

/**
 * The problem type of a request refused as `exceeds-capacity` (status 413): its cost is above what
 * a limit can ever admit, so, unlike `quota-exceeded`, retrying later cannot help. The URI is
 * the package README's section on it, so a client that dereferences the type (as RFC 9457
 * encourages) reads what it means.
 */
export const costExceedsCapacityType =
  'https://www.npmjs.com/package/@noa/rate-limiter#a-cost-no-limit-can-ever-admit';

const seconds = (ms: number): number => Math.ceil(ms / 1_000);

/**
 * The largest structured-field Integer (RFC 8941 allows 15 digits; a parser refuses the whole
 * field past that, and `String()` of 10^21 is `1e+21`, no Integer at all). A quota or remaining
 * count above it (a limit of 2^53 − 1 used as "unlimited") is stated as this, which understates
 * it: a client relying on it is never refused. Times in seconds never come near it.
 */
const maxFieldInteger = 999_999_999_999_999;

/** `n` as a structured-field Integer, capped at {@link maxFieldInteger}. */
const fieldInteger = (n: number): number => Math.min(n, maxFieldInteger);

/** Quotes a policy name as a structured-field String (names are validated tokens, so no escaping). */
const quoted = (name: string): string => `"${name}"`;

/**
 * One `RateLimit-Policy` list member: a quota `q` per window `w` that a client can rely on, that
 * is, a client sending `q` at once every `w` seconds is never refused by this limit. For windows
 * that is the limit (a sliding window's weighted estimate counts part of the window before, so
 * there `q` at once is admitted every `2w`: it states its limit as configured, and its `t` says
 * when the next point is back). A bucket whose `burst` differs from its `limit` admits the burst once, then `limit`
 * per window: `q` is its `limit` (its sustained rate), and a burst above it is stated by the
 * vendor parameter `noa-burst` (the draft's "acme-burst"; clients that do not know it read the
 * sustained rate, which holds). A burst below the limit is all the bucket ever holds, so `q` is
 * the burst, over the time the bucket takes to refill it (rounded up to whole seconds, which
 * understates the rate a little rather than overstate it).
 */
function quotaPolicy(limit: LimitStatus): string {
  return `${quoted(limit.name)};${policyParameters(limit)}`;
}

/**
 * The parameters of a limit's policy, `q=…;w=…` and a burst above `q` as `noa-burst`, as
 * {@link quotaPolicy} states them: the draft-6 and draft-7 `RateLimit-Policy` (`10;w=1;noa-burst=100`)
 * makes the same promise, so a bucket's is its sustained rate there too, not its capacity per window.
 */
function policyParameters(limit: LimitStatus): string {
  const rate = limit.rate ?? limit.limit;
  if (limit.limit < rate)
    return `q=${fieldInteger(limit.limit)};w=${fieldInteger(seconds(Math.ceil((limit.limit * limit.windowMs) / rate)))}`;
  const q = fieldInteger(rate);
  // Both capped, a burst no longer states more than q: it says nothing then.
  const burst = fieldInteger(limit.limit) > q ? `;noa-burst=${fieldInteger(limit.limit)}` : '';
  return `q=${q};w=${fieldInteger(seconds(limit.windowMs))}${burst}`;
}

/**
 * When a blocked key's limit has quota again: at the block's end when its window still has room
 * (a day with 98 left is back with the block's end, not at the day's end), else when the limit
 * frees it (`untilMs`: its `nextMs` for `t`, its `resetMs` for the legacy reset), if later.
 */
export const blockedResetMs = (remaining: number, untilMs: number, blockedMs: number): number =>
  remaining > 0 ? blockedMs : Math.max(untilMs, blockedMs);

/**
 * One `RateLimit` list member. `t` is, as draft-ietf-httpapi-ratelimit-headers-10 defines it, the
 * seconds until additional quota is made available: the limit's `nextMs` (its window's end, or
 * for sliding windows and buckets when the next point comes back, often well before the whole
 * quota), rounded up, so that a client that waits `t` after `r=0` finds a point. 0 with the whole
 * quota left (nothing more can come). A key blocked for `blockedMs` has none left until the block
 * ends (and then what its limit frees).
 */
function limitState(limit: LimitStatus, blockedMs: number): string {
  // A custom store's decisions written before nextMs existed: the full reset, as `t` was then
  // (never `t=NaN`, which would make clients drop the whole field).
  const nextMs = limit.nextMs ?? limit.resetMs;
  if (blockedMs > 0)
    return `${quoted(limit.name)};r=0;t=${fieldInteger(seconds(blockedResetMs(limit.remaining, nextMs, blockedMs)))}`;
  return `${quoted(limit.name)};r=${fieldInteger(limit.remaining)};t=${fieldInteger(seconds(nextMs))}`;
}

/** The limit with the fewest points left (the one `result.remaining` and `resetMs` are of). */
function tightestLimit(result: RateLimitResult): LimitStatus {
  return (
    result.limits.find((limit) => limit.remaining === result.remaining && limit.resetMs === result.resetMs) ??
    result.limits[0]!
  );
}

/**
 * The fields of draft-ietf-httpapi-ratelimit-headers-06 or -07 as express-rate-limit sends them,
 * for `limit`: its quota, what is left, the seconds until its window resets (a blocked key: none
 * left until its block ends, as the legacy fields say), and `RateLimit-Policy: <quota>;w=<seconds>`
 * (a bucket's as draft-10's `q`, `w` and `noa-burst`: `10;w=1;noa-burst=100`).
 */
function olderDraftFields(
  draft: 'draft-6' | 'draft-7',
  limit: LimitStatus,
  blockedMs: number,
): Record<string, string> {
  const quota = fieldInteger(limit.limit);
  const remaining = blockedMs > 0 ? 0 : fieldInteger(limit.remaining);
  const resetMs = blockedMs > 0 ? blockedResetMs(limit.remaining, limit.resetMs, blockedMs) : limit.resetMs;
  const reset = fieldInteger(seconds(resetMs));
  // The policy promises a rate (a bucket's sustained one); `limit` is what the bucket holds, as
  // `remaining` counts it (express-rate-limit's fixed windows have the two equal).
  const policy = policyParameters(limit).slice('q='.length);
  if (draft === 'draft-7')
    return {
      'RateLimit-Policy': policy,
      RateLimit: `limit=${quota}, remaining=${remaining}, reset=${reset}`,
    };
  return {
    'RateLimit-Policy': policy,
    'RateLimit-Limit': String(quota),
    'RateLimit-Remaining': String(remaining),
    'RateLimit-Reset': String(reset),
  };
}

/**
 * The rate-limit response headers of a result, e.g.
 * `RateLimit-Policy: "burst";q=100;w=60` and `RateLimit: "burst";r=50;t=30`, one list member
 * per limit; `Retry-After` (seconds) when refused, unless no retry can succeed (`exceeds-capacity`:
 * a `Retry-After` would invite a retry, and 0 a loop). A fail mode's answer (`source: 'fail-mode'`,
 * `failMode: 'open'` or `'closed'` while the store cannot be reached) has no rate-limit fields:
 * nothing is known of the quota, and a made-up one (`r=<full>;t=0`) would mislead clients that pace
 * themselves by it; a refusal still says when to come back (`Retry-After`).
 */
export function rateLimitHeaders(
  result: RateLimitResult,
  options: HeaderOptions = {},
  nowMs: number = Date.now(),
): Record<string, string> {
  const headers: Record<string, string> = {};
  // A blocked key has no quota until the block ends, whatever its windows say: the headers
  // agree with Retry-After so that clients that read them wait long enough.
  const blockedMs = result.outcome === 'blocked' ? result.retryAfterMs : 0;
  if (result.limits.length > 0 && result.source !== 'fail-mode') {
    const draft = options.draft ?? 'draft-10';
    if (options.standard !== false && draft !== 'draft-10')
      Object.assign(headers, olderDraftFields(draft, tightestLimit(result), blockedMs));
    else if (options.standard !== false && result.limits.length === 1) {
      const limit = result.limits[0]!;
      headers['RateLimit-Policy'] = quotaPolicy(limit);
      headers.RateLimit = limitState(limit, blockedMs);
    } else if (options.standard !== false) {
      headers['RateLimit-Policy'] = result.limits.map(quotaPolicy).join(', ');
      headers.RateLimit = result.limits.map((limit) => limitState(limit, blockedMs)).join(', ');
    }
    if (options.legacy === true) {
      const tightest = tightestLimit(result);
      headers['X-RateLimit-Limit'] = String(tightest.limit);
      headers['X-RateLimit-Remaining'] = String(blockedMs > 0 ? 0 : result.remaining);
      const resetMs =
        blockedMs > 0 ? blockedResetMs(result.remaining, result.resetMs, blockedMs) : result.resetMs;
      headers['X-RateLimit-Reset'] = String(
        options.legacyReset === 'delta-seconds' ? seconds(resetMs) : seconds(nowMs + resetMs),
      );
    }
  }
  if (!result.allowed && result.retryAfterMs > 0 && Number.isFinite(result.retryAfterMs))
    headers['Retry-After'] = String(seconds(result.retryAfterMs));
  return headers;
}

/** The draft-10 fields that are lists of one member per policy, named by the member's String. */
const policyListFields = ['RateLimit-Policy', 'RateLimit'] as const;

/**
 * The members of a draft-10 list field and their names (`"api";q=3;w=60, "day";q=…` →
 * `api`, `day`), or undefined when `value` is not such a list (draft-7's `limit=3, …`, anything
 * another library wrote that we cannot read). Commas and quotes inside a String are skipped.
 */
function policyMembers(value: string): { name: string; member: string }[] | undefined {
  const members: { name: string; member: string }[] = [];
  let index = 0;
  while (index < value.length) {
    while (value[index] === ' ' || value[index] === '\t') index += 1;
    if (value[index] !== '"') return undefined;
    const begin = index;
    let name = '';
    for (index += 1; index < value.length && value[index] !== '"'; index += 1) {
      if (value[index] === '\\') index += 1;
      name += value[index] ?? '';
    }
    if (index >= value.length) return undefined;
    // The parameters up to the next comma (they hold no Strings here, nor in the draft's).
    const comma = value.indexOf(',', index);
    const end = comma < 0 ? value.length : comma;
    if (value.slice(index + 1, end).includes('"')) return undefined;
    members.push({ name, member: value.slice(begin, end).trimEnd() });
    index = end + 1;
  }
  return members.length > 0 ? members : undefined;
}

/**
 * `headers` (of {@link rateLimitHeaders}) for a response on which an earlier check of the same
 * request (a global limiter's middleware before a route's stricter one, a second Fastify
 * registration) may have set the draft-10 list fields: each keeps that check's members beside this
 * one's, so that a client sees every policy that can refuse it (replaced, the first limiter's
 * `r=0` was hidden by the second's `r=9`). A member of a name this check also sends is this
 * check's (names stay unique). `earlier` reads a field already on the response; a value that is
 * no draft-10 list (draft-7's) is replaced, as before.
 */
export function withEarlierPolicies(
  headers: Record<string, string>,
  earlier: (name: string) => unknown,
): Record<string, string> {
  for (const field of policyListFields) {
    const fresh = headers[field];
    if (fresh === undefined) continue;
    const before = earlier(field);
    if (before === undefined) continue;
    const beforeText = Array.isArray(before) ? before.join(', ') : String(before);
    const kept = policyMembers(beforeText);
    const added = policyMembers(fresh);
    if (kept === undefined || added === undefined) continue;
    const names = new Set(added.map((member) => member.name));
    const others = kept.filter((member) => !names.has(member.name)).map((member) => member.member);
    if (others.length > 0) headers[field] = [...others, fresh].join(', ');
  }
  return headers;
}

/** An RFC 9457 problem document for a refused request. */
export interface QuotaProblem {
  type: string;
  title: string;
  status: number;
  detail: string;
  /**
   * Seconds until retry (same as the `Retry-After` header); absent when no retry can succeed (a
   * cost above a limit's capacity, a deny-listed client).
   */
  retryAfter?: number;
  /**
   * The limits that refused the request (empty for deny-listed clients and for a store outage),
   * under the member name draft-ietf-httpapi-ratelimit-headers-10 defines for its problem types
   * (section 5.1), so that clients written to the draft find it.
   */
  'violated-policies': string[];
}

/** `"a"`, `"a" and "b"`, `"a", "b" and "c"`. */
function quotedList(names: readonly string[]): string {
  const all = names.map(quoted);
  return all.length <= 1 ? (all[0] ?? '') : `${all.slice(0, -1).join(', ')} and ${all.at(-1)}`;
}

/**
 * The body of a cost above what a limit can ever admit: 413 Content Too Large (RFC 9110: the
 * request is larger than the server will process, permanent when it has no `Retry-After`), which
 * clients do not retry as they retry a 429, with its own problem type.
 */
function beyondCapacityProblem(result: RateLimitResult): QuotaProblem {
  // The limits that can never admit it (not those a block or the fail mode refused meanwhile).
  const violated = result.limits
    .filter((limit) => limit.retryAfterMs === Number.POSITIVE_INFINITY)
    .map((limit) => limit.name);
  const plural = violated.length === 1 ? 'limit' : 'limits';
  return {
    type: costExceedsCapacityType,
    title: 'Request cost exceeds what the quota can ever admit',
    status: 413,
    detail: `This request costs more than the ${quotedList(violated)} ${plural} can ever admit: it will never succeed as it is, whenever it is retried. Reduce its cost.`,
    'violated-policies': violated,
  };
}

/**
 * The body of a refusal by `failMode: 'closed'` (the store cannot be reached): 503 Service
 * Unavailable, as express-rate-limit and @fastify/rate-limit answer a store error. It is the
 * limiter that is unavailable, not the quota that is exceeded, so no policy is named as violated
 * and the type is plain `about:blank`.
 */
function storeUnavailableProblem(result: RateLimitResult): QuotaProblem {
  const retryAfter = seconds(result.retryAfterMs);
  return {
    type: 'about:blank',
    title: 'Service Unavailable',
    status: 503,
    detail: `The rate limiter cannot reach its store, so it cannot tell whether this request is within its quota; retry in ${retryAfter} s.`,
    retryAfter,
    'violated-policies': [],
  };
}

/**
 * The detail of a `blocked` refusal: the block's own length, and the retry time when the quota
 * comes back later than the block ends (a block shorter than its window).
 */
function blockedDetail(result: RateLimitResult): string {
  const retryAfter = seconds(result.retryAfterMs);
  const block = result.source === 'fail-mode' ? undefined : result.blockedMs;
  if (block === undefined) return `Too many requests over the limit: blocked; retry in ${retryAfter} s.`;
  const blockSeconds = seconds(block);
  return blockSeconds >= retryAfter
    ? `Too many requests over the limit: blocked for ${blockSeconds} s.`
    : `Too many requests over the limit: blocked for ${blockSeconds} s; the quota comes back in ${retryAfter} s, retry then.`;
}

/**
 * The `application/problem+json` body of a refusal: 429 `quota-exceeded` (403 for deny-listed
 * clients, 413 for a cost above what a limit can ever admit, 503 for a refusal by
 * `failMode: 'closed'` while the store cannot be reached); a blocked key's is 429 (or
 * `options.blockedStatus`) `abnormal-usage-detected`.
 */
export function quotaProblem(result: RateLimitResult, options: ProblemOptions = {}): QuotaProblem {
  // Known from the limits alone, whether the store answered or not.
  if (result.outcome === 'exceeds-capacity') return beyondCapacityProblem(result);
  if (result.source === 'fail-mode') return storeUnavailableProblem(result);
  const blocked = result.outcome === 'blocked';
  const status = result.outcome === 'denied' ? 403 : blocked ? (options.blockedStatus ?? 429) : 429;
  const detail =
    result.outcome === 'denied'
      ? 'This client is not allowed.'
      : blocked
        ? blockedDetail(result)
        : `Quota exceeded; retry in ${seconds(result.retryAfterMs)} s.`;
  return {
    type:
      result.outcome === 'denied' ? 'about:blank' : blocked ? abnormalUsageDetectedType : quotaExceededType,
    title:
      result.outcome === 'denied'
        ? 'Forbidden'
        : blocked
          ? 'Request not satisfied due to detection of abnormal request pattern'
          : 'Request cannot be satisfied as assigned quota has been exceeded',
    status,
    detail,
    // A deny-listed client has no time after which a retry succeeds: no retryAfter (not 0).
    ...(result.outcome === 'denied' ? {} : { retryAfter: seconds(result.retryAfterMs) }),
    'violated-policies': result.limits.filter((limit) => !limit.allowed).map((limit) => limit.name),
  };
}

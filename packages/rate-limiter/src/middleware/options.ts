import { hash } from 'node:crypto';
import { z } from 'zod';
import { InvalidCheckInputError } from '../errors.js';
import { blockedStatuses, headerDrafts, legacyResetFormats } from '../headers.js';
import { defaultIpv6Subnet, ipKey } from '../ip-key.js';
import { type CheckInput, RateLimiter } from '../limiter.js';
import type { RateLimitResult } from '../result.js';
import { isWellFormedText, utf16Digest } from '../utf16-key.js';

/** How the key of a request is found: a built-in kind or a function. */
export const keyKinds = ['ip', 'user', 'api-key'] as const;

/**
 * The request facts the request functions (`keyBy`, `role`, `cost`, `skip`) see, the same for
 * Express and Fastify; each framework adds its own request and response (`ExpressRequestFacts`:
 * `request`, `response`; `FastifyRequestFacts`: `request`, `reply`).
 */
export interface RequestFacts {
  /** Client IP as the framework computed it (honouring its trust-proxy setting). */
  ip: string | undefined;
  method: string;
  /** The route pattern when known (`/users/:id`; Fastify's 404s: `*`), else the path (Express before routing). */
  route: string;
  headers: Record<string, string | string[] | undefined>;
  /** `req.user` as set by an auth middleware (passport and friends), if any. */
  user: unknown;
}

/** A value, or a promise of it: what the request functions may return. */
export type MaybePromise<T> = T | PromiseLike<T>;

const fn = <T>(message: string) => z.custom<T>((value) => typeof value === 'function', message);

/**
 * Options shared by the Express middleware and the Fastify plugin, their request functions typed
 * with each framework's facts (`Facts`: {@link RequestFacts} plus its own request and response).
 */
export const middlewareOptionsSchemaOf = <Facts extends RequestFacts>() =>
  z
    .object({
      /** The limiter to check requests with. */
      limiter: z.instanceof(RateLimiter, { message: 'a RateLimiter (createRateLimiter())' }),
      /**
       * The key: `'ip'`, `'user'` (`req.user.id`), `'api-key'` (a digest of the `apiKeyHeader`), or a function of
       * the request facts, which may return a promise (a key looked up in a session store), whose
       * value is keyed as `custom:<value>` (a value the client chose cannot name an IP's or user's key), or past
       * {@link maxCustomKeyValueLength} characters by its digest (see {@link customKeyOf}). When a
       * user or API key is missing or empty (or the function returns `undefined`, `null` or `''`) the IP is
       * used; a function that returns another kind of value (an object) or throws or rejects fails the request (Express `next(error)`, a Fastify
       * error reply).
       */
      keyBy: z
        .union([z.enum(keyKinds), fn<(facts: Facts) => MaybePromise<string | undefined>>('a function')])
        .default('ip'),
      /**
       * IPv6 clients are keyed by their network of this prefix length (one client holds a /64 or
       * more, and could rotate addresses within it); `false` keys each address. IPv4 is unaffected.
       * A function of the request facts (which may return a promise) gives it per request, as
       * express-rate-limit's: called only when the key is the IP; a value other than an integer
       * from 1 to 128 or `false` fails the request with `InvalidCheckInputError` (field `ipv6Subnet`).
       */
      ipv6Subnet: z
        .union([
          z.number().int().min(1).max(128),
          z.literal(false),
          fn<(facts: Facts) => MaybePromise<number | false>>('a function'),
        ])
        .default(defaultIpv6Subnet),
      /** Header holding API keys (for `keyBy: 'api-key'`). */
      apiKeyHeader: z.string().min(1).default('x-api-key'),
      /** Count each endpoint (method + route) separately; HEAD counts as GET (it runs the GET handler). */
      perEndpoint: z.boolean().default(false),
      /** The caller's role, selecting the limiter's `roles` rules (the function may return a promise). */
      role: fn<(facts: Facts) => MaybePromise<string | undefined>>('a function').optional(),
      /** Points a request costs: a number or a function of the request (which may return a promise). */
      cost: z
        .union([z.number().int().nonnegative(), fn<(facts: Facts) => MaybePromise<number>>('a function')])
        .default(1),
      /** Requests for which this returns true are not limited. */
      skip: fn<(facts: Facts) => boolean | Promise<boolean>>('a function').optional(),
      /**
       * Give a request's points back once its response shows it succeeded (by
       * `requestWasSuccessful`, default status < 400): only failures count, e.g. failed logins.
       */
      skipSuccessfulRequests: z.boolean().default(false),
      /** Give a request's points back once its response shows it failed (or the client went away). */
      skipFailedRequests: z.boolean().default(false),
      /**
       * The status of a blocked key's refusal (auto-block or `limiter.block()`): 429 (default) or
       * 403, as @fastify/rate-limit's `ban`; the body is `abnormal-usage-detected` either way.
       */
      blockedStatus: z
        .union(blockedStatuses.map((status) => z.literal(status)) as [z.ZodLiteral<429>, z.ZodLiteral<403>])
        .default(429),
      /** Which headers to send. */
      headers: z
        .object({
          standard: z.boolean().default(true),
          /** `'draft-10'` (default), or `'draft-7'` / `'draft-6'` as express-rate-limit sends them (see `HeaderOptions`). */
          draft: z.enum(headerDrafts).default('draft-10'),
          legacy: z.boolean().default(false),
          /** The legacy `X-RateLimit-Reset`: `'epoch-seconds'` (default) or `'delta-seconds'` (@fastify/rate-limit's). */
          legacyReset: z.enum(legacyResetFormats).default('epoch-seconds'),
        })
        .strict()
        .default({
          standard: true,
          draft: 'draft-10',
          legacy: false,
          legacyReset: 'epoch-seconds',
        }),
    })
    .strict();

/** {@link middlewareOptionsSchemaOf} with the facts both frameworks give. */
export const middlewareOptionsSchema = middlewareOptionsSchemaOf<RequestFacts>();

/** Parsed middleware options (of a framework's `Facts`). */
export type ParsedMiddlewareOptions<Facts extends RequestFacts = RequestFacts> = z.infer<
  ReturnType<typeof middlewareOptionsSchemaOf<Facts>>
>;

const isPromiseLike = (value: unknown): value is PromiseLike<unknown> =>
  typeof (value as PromiseLike<unknown> | undefined)?.then === 'function';

/**
 * What the limiter checks for a request under `options` (both middlewares ask the same): a promise
 * only when one of the request functions returned one, so that sync options cost no extra tick.
 */
export function checkInputOf<Facts extends RequestFacts>(
  facts: Facts,
  options: ParsedMiddlewareOptions<Facts>,
  onUndefinedIp?: () => void,
): CheckInput | Promise<CheckInput> {
  const customKey = typeof options.keyBy === 'function' ? options.keyBy(facts) : undefined;
  const role = options.role?.(facts);
  const cost = typeof options.cost === 'function' ? options.cost(facts) : options.cost;
  // A promise kept as the key would be a new key per request (nothing limited), and its rejection unhandled.
  if (isPromiseLike(customKey) || isPromiseLike(role) || isPromiseLike(cost))
    return Promise.all([customKey, role, cost]).then(async ([key, roleName, points]) => ({
      key: await requestKey(facts, options, key, onUndefinedIp),
      ip: facts.ip,
      role: roleName,
      cost: points,
    }));
  const key = requestKey(facts, options, customKey, onUndefinedIp);
  if (typeof key !== 'string') return key.then((found) => ({ key: found, ip: facts.ip, role, cost }));
  return { key, ip: facts.ip, role, cost };
}

/** A prefix length `ipKey` takes: an integer from 1 to 128, or `false` (each address). */
const isIpv6Subnet = (value: unknown): value is number | false =>
  value === false || (Number.isInteger(value) && (value as number) >= 1 && (value as number) <= 128);

/** The `ip:` key of an address under a prefix length an `ipv6Subnet` function returned. */
function ipKeyBy(ip: string, subnet: unknown): string {
  if (!isIpv6Subnet(subnet))
    throw new InvalidCheckInputError(
      'ipv6Subnet',
      'ipv6Subnet',
      `an ipv6Subnet function must return an integer from 1 to 128 or false, got ${typeof subnet === 'string' ? `"${subnet}"` : String(subnet)}`,
    );
  return `ip:${ipKey(ip, subnet)}`;
}

/**
 * The part of a key that stands for an API key: a digest, because the key would otherwise be
 * written in clear into Redis key names (seen by `MONITOR`, `SCAN`, slow logs) and into logs, and a
 * client could make a key as large as its header (up to 16 kB each, 100k of them in memory).
 * 132 bits of SHA-256: no two API keys share a quota by accident.
 */
const apiKeyDigest = (apiKey: string): string => hash('sha256', apiKey, 'base64url').slice(0, 22);

/**
 * What the key of a `keyBy` function starts with (`custom:` and the value it returned), so that no
 * value it returns can be a built-in kind's key (`ip:…`, `user:…`, `key:…`).
 */
const customKeyPrefix = 'custom:';

/**
 * The longest `keyBy` value kept whole in its key (UTF-16 code units): ids, tenants, e-mail
 * addresses fit. A longer one is keyed by its digest, so that a value read from what the client
 * sends (a header of up to 16 kB) makes no key of that size in Redis or in the memory store.
 */
export const maxCustomKeyValueLength = 128;

/**
 * The key a `keyBy` function's value (neither `undefined`, `null` nor `''`) is counted under:
 * `custom:<value>`, or for a value longer than {@link maxCustomKeyValueLength},
 * `custom#<SHA-256 of it, base64url>`. The `#` keeps the two apart (no value is keyed `custom#…`),
 * and two long values share a key only if they share a SHA-256 digest. A value that is not
 * well-formed Unicode (a lone surrogate, as `JSON.parse('"\\ud800"')` makes) is digested whatever its
 * length, from its UTF-16 code units: Redis keys and the digest of a string take its UTF-8, which
 * writes every lone surrogate as U+FFFD, so `"\ud800"` and `"\udbff"` would share one quota.
 */
export function customKeyOf(value: string | number): string {
  const text = String(value);
  const wellFormed = isWellFormedText(text);
  if (wellFormed && text.length <= maxCustomKeyValueLength) return `${customKeyPrefix}${text}`;
  return `custom#${wellFormed ? hash('sha256', text, 'base64url') : utf16Digest(text)}`;
}

/**
 * The key of a request under `options`; `customKey` is what a `keyBy` function returned. A
 * promise only when the key is the IP and an `ipv6Subnet` function returned one. `onUndefinedIp`
 * is called when the key is the IP and the request has none (`ip:unknown`, see {@link warnUndefinedIp}).
 */
function requestKey<Facts extends RequestFacts>(
  facts: Facts,
  options: ParsedMiddlewareOptions<Facts>,
  customKey: string | undefined,
  onUndefinedIp?: () => void,
): string | Promise<string> {
  // A custom key is often what the client sends (a header): kept as it is, `ip:203.0.113.5` or
  // `user:42` would spend that IP's or user's quota. Its own prefix keeps the key spaces apart.
  // Missing as a user id is (undefined, null, ''): a JavaScript caller's numeric id 0 is a key.
  const value: unknown = customKey;
  // Kept as String(value), every object would be `custom:[object Object]`: one quota for all.
  if (
    value !== undefined &&
    value !== null &&
    typeof value !== 'string' &&
    !(typeof value === 'number' && Number.isFinite(value))
  )
    throw new InvalidCheckInputError(
      'keyBy',
      'keyBy',
      `a keyBy function must return a string, a finite number, undefined or null, got ${typeof value}`,
    );
  let key: string | undefined =
    value === undefined || value === null || value === '' ? undefined : customKeyOf(value as string);
  if (options.keyBy === 'user') {
    const id = (facts.user as { id?: unknown } | undefined)?.id;
    key = id === undefined || id === null || id === '' ? undefined : `user:${userIdText(id)}`;
  } else if (options.keyBy === 'api-key') {
    const header = facts.headers[options.apiKeyHeader.toLowerCase()];
    const value = Array.isArray(header) ? header[0] : header;
    key = value ? `key:${apiKeyDigest(value)}` : undefined;
  }
  // An empty key is a missing one: kept, it would be one quota for every client without one.
  if (
    (key === undefined || key === '') &&
    facts.ip !== undefined &&
    typeof options.ipv6Subnet === 'function'
  ) {
    const ip = facts.ip;
    const subnet = options.ipv6Subnet(facts);
    if (isPromiseLike(subnet))
      return Promise.resolve(subnet).then((found) => endpointKey(facts, options, ipKeyBy(ip, found)));
    key = ipKeyBy(ip, subnet);
  } else if (key === undefined || key === '') {
    if (facts.ip === undefined) onUndefinedIp?.();
    key = `ip:${facts.ip === undefined ? 'unknown' : ipKey(facts.ip, options.ipv6Subnet as number | false)}`;
  }
  return endpointKey(facts, options, key);
}

/**
 * `req.user.id` as the text of a `user:` key. An object whose text is V8's `[object …]` (a plain
 * object, an array, a Map, one without a prototype) is refused: kept, every user would share the
 * one key `user:[object Object]`. An id with a `toString` of its own (a MongoDB ObjectId, a
 * bigint) keeps its text.
 */
function userIdText(id: unknown): string {
  let text: string | undefined;
  try {
    text = String(id);
  } catch {
    text = undefined;
  }
  if (text === undefined || (typeof id === 'object' && /^\[object [^\]]*\]$/.test(text)) || text === '')
    throw new InvalidCheckInputError(
      'keyBy',
      'keyBy',
      `keyBy 'user': req.user.id must be a string, a number or an object with its own toString (an ObjectId), got ${text === undefined ? 'an object that cannot be converted to a string' : text}`,
    );
  return text;
}

/** `key`, for `perEndpoint` followed by the request's method and route. */
function endpointKey<Facts extends RequestFacts>(
  facts: Facts,
  options: ParsedMiddlewareOptions<Facts>,
  key: string,
): string {
  if (!options.perEndpoint) return key;
  // Express and Fastify answer HEAD with the GET handler: one endpoint, one quota.
  return `${key}:${facts.method === 'HEAD' ? 'GET' : facts.method} ${facts.route}`;
}

/** express-rate-limit's default: a response below 400 is a success. */
export const defaultRequestWasSuccessful = (statusCode: number): boolean => statusCode < 400;

/**
 * What a counted request may owe back, once: see {@link refunderFor}. `successful` is its
 * response's success (false: the client went away); `'unserved'`: it never reached the route (its
 * client went away during its queue delay), so its points go back whatever the options say.
 */
export type RequestRefund = (outcome: boolean | 'unserved') => void;

/**
 * When a counted request must be given back after its response (`skipSuccessfulRequests` /
 * `skipFailedRequests`): returns the function to call with the response's success (the first
 * call decides), or undefined when nothing can be refunded (neither option, or the request was
 * not counted). Its points go back at most once, however it is called (see {@link RequestRefund}).
 */
export function refunderFor(
  options: Pick<ParsedMiddlewareOptions, 'skipSuccessfulRequests' | 'skipFailedRequests' | 'limiter'>,
  input: CheckInput,
  result: RateLimitResult,
): RequestRefund | undefined {
  if (!options.skipSuccessfulRequests && !options.skipFailedRequests) return undefined;
  // Only points the store counted can go back: not a fallback's, a list's or a zero cost's.
  if (!result.allowed || result.outcome !== 'allowed' || result.source !== 'store') return undefined;
  const points = input.cost ?? 1;
  if (points === 0) return undefined;
  let decided = false;
  let refunded = false;
  const giveBack = (): void => {
    if (refunded) return;
    refunded = true;
    // A refund that fails (store down) leaves the request counted: the limiter has logged it, and
    // the response is already sent.
    options.limiter.refund({ key: input.key, role: input.role }, points).catch(() => {});
  };
  return (outcome) => {
    if (outcome === 'unserved') giveBack();
    if (outcome === 'unserved' || decided) return;
    decided = true;
    if (outcome ? options.skipSuccessfulRequests : options.skipFailedRequests) giveBack();
  };
}

/**
 * Gives back the points of an admitted request that never reached the route: its client went away
 * while it waited out its queue delay (see `waitOutQueueDelay`), as `acquire()` gives back the
 * slot of a caller that aborts during its delay. Through `refund` when the skip options made one
 * (so that the points go back once), else directly; best effort, as refunds after a response are.
 */
export function giveBackUnserved(
  limiter: RateLimiter,
  input: CheckInput,
  result: RateLimitResult,
  refund: RequestRefund | undefined,
): void {
  if (refund !== undefined) {
    refund('unserved');
    return;
  }
  const points = input.cost ?? 1;
  // Only what was counted for this request: in the store, or in the local fallback during an outage.
  if (points === 0 || result.outcome !== 'allowed') return;
  if (result.source !== 'store' && result.source !== 'fallback') return;
  limiter.refund({ key: input.key, role: input.role }, points).catch(() => {});
}

/**
 * Emits the process warning about a trust-proxy setting that breaks IP keys, the commonest
 * misconfiguration of IP rate limits: `permissive` (trust every hop: any client sets
 * X-Forwarded-For and so picks its key, and its quota) or `untrusted` (X-Forwarded-For arrives
 * but no proxy is trusted: behind one, every client shares the proxy's IP and quota).
 */
export function warnTrustProxy(problem: 'permissive' | 'untrusted', setting: string, example: string): void {
  if (problem === 'permissive')
    process.emitWarning(
      `${setting} is true: any client can set X-Forwarded-For and so choose its rate-limit key; name your proxies instead (e.g. ${example})`,
      { code: 'NOA_RATE_LIMIT_PERMISSIVE_TRUST_PROXY' },
    );
  else
    process.emitWarning(
      `A request carries X-Forwarded-For but ${setting} is off: behind a proxy every client shares the proxy's IP and quota; set ${setting} to your proxies`,
      { code: 'NOA_RATE_LIMIT_UNTRUSTED_FORWARDED_FOR' },
    );
}

/**
 * Emits the process warning about a request without a client address (`req.ip` undefined), keyed
 * by the IP: the server listens on a socket without addresses (a Unix socket, a named pipe) or the
 * connection closed before the check. Every such request is keyed `ip:unknown`, one quota for all
 * of their clients (express-rate-limit's ERR_ERL_UNDEFINED_IP_ADDRESS). Each middleware warns once.
 */
export function warnUndefinedIp(): void {
  process.emitWarning(
    "A request has no client IP (req.ip is undefined: a server on a Unix socket or a named pipe, or a connection closed before the check): every such request is keyed 'ip:unknown' and shares one quota; behind a proxy, have the framework trust it or key requests with a keyBy function",
    { code: 'NOA_RATE_LIMIT_UNDEFINED_IP' },
  );
}

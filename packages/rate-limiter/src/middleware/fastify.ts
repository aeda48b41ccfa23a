import { isDeepStrictEqual } from 'node:util';
import { parseOptions } from '@noa/core';
import type {
  FastifyInstance,
  FastifyPluginAsync,
  FastifyReply,
  FastifyRequest,
  HookHandlerDoneFunction,
} from 'fastify';
import fastifyPlugin from 'fastify-plugin';
import { z } from 'zod';
import type { CheckInput } from '../check-input.js';
import { type ProblemOptions, quotaProblem, rateLimitHeaders, withEarlierPolicies } from '../headers.js';
import { RateLimiter } from '../limiter.js';
import type { RateLimitResult } from '../result.js';
import { MemoryStore } from '../stores/memory-store.js';
import {
  checkInputOf,
  defaultRequestWasSuccessful,
  giveBackUnserved,
  middlewareOptionsSchemaOf,
  type ParsedMiddlewareOptions,
  type RequestFacts,
  refunderFor,
  warnTrustProxy,
  warnUndefinedIp,
} from './options.js';
import { waitOutQueueDelay } from './queue-delay.js';

/**
 * Sends the refusal; the default replies problem+json with 429 (403 when deny-listed, 413 for a
 * cost above what a limit can ever admit, 503 when `failMode: 'closed'` refused it because the
 * store cannot be reached: check `result.source === 'fail-mode'`). `options` carries the
 * `blockedStatus` in force for the request (the route's, else the plugin's): `quotaProblem(result,
 * options)` is the default's body and status (403 for a blocked key under `blockedStatus: 403`).
 */
export type FastifyRefusalHandler = (
  request: FastifyRequest,
  reply: FastifyReply,
  result: RateLimitResult,
  options: ProblemOptions,
) => unknown;

/**
 * What the request functions (`keyBy`, `role`, `cost`, `skip`) of the Fastify plugin receive: the
 * {@link RequestFacts} and Fastify's own `request` and `reply` (a decorated `request.jwt`, a
 * session, `request.params`: what @fastify/rate-limit's `keyGenerator(request)` reads).
 */
export interface FastifyRequestFacts extends RequestFacts {
  request: FastifyRequest;
  reply: FastifyReply;
}

type FastifyOptions = ParsedMiddlewareOptions<FastifyRequestFacts> & { handler?: FastifyRefusalHandler };

const fastifyMiddlewareSchema = middlewareOptionsSchemaOf<FastifyRequestFacts>().extend({
  /**
   * Replaces the default problem+json refusal; headers are already set when it runs. It must
   * send the reply (or return a promise that does): if nothing was sent once it has returned,
   * the default refusal is sent. A route's own (`config.rateLimit.handler`) replaces the plugin's
   * for that route, as @fastify/rate-limit's per-route `errorResponseBuilder` does.
   */
  handler: z.custom<FastifyRefusalHandler>((value) => typeof value === 'function', 'a function').optional(),
});

const pluginOptionsSchema = fastifyMiddlewareSchema.extend({
  /** Limit every route (true) or only routes with `config.rateLimit` / `config.noaRateLimit` (false). */
  global: z.boolean().default(true),
  /**
   * The hook the check runs in. `'preHandler'` runs after the `onRequest`/`preValidation` hooks
   * that authenticate (and after body parsing), so `keyBy: 'user'` and `role` see `request.user`.
   */
  hook: z.enum(['onRequest', 'preHandler']).default('onRequest'),
  /** Decides success for `skipSuccessfulRequests` / `skipFailedRequests`. Default: status < 400. */
  requestWasSuccessful: z
    .custom<FastifyRequestWasSuccessful>((value) => typeof value === 'function', 'a function')
    .optional(),
});

/** Whether a request whose response was sent succeeded (for `skipSuccessfulRequests` / `skipFailedRequests`). */
export type FastifyRequestWasSuccessful = (
  request: FastifyRequest,
  reply: FastifyReply,
) => boolean | Promise<boolean>;

/** Options of {@link fastifyRateLimit}. */
export type FastifyRateLimitOptions = z.input<typeof pluginOptionsSchema>;

/**
 * Per-route overrides, in a route's `config.rateLimit` (`config.noaRateLimit` with
 * `@noa/rate-limiter/fastify-own-names`), or `false` to exempt the route.
 */
export const routeRateLimitSchema = fastifyMiddlewareSchema.partial().strict();

/** Per-route options as written in `config: { rateLimit: … }` (or `config: { noaRateLimit: … }`). */
export type RouteRateLimitOptions = z.input<typeof routeRateLimitSchema>;

/**
 * A hook made by `fastify.rateLimit()` (`fastify.noaRateLimit()` with
 * `@noa/rate-limiter/fastify-own-names`): checks the request as the plugin's own hook does.
 */
export type FastifyRateLimitHook = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

/**
 * The names the plugin claims on Fastify's types: `config.<name>` for a route's options and
 * `fastify.<name>()` for the manual hook. `rateLimit` are @fastify/rate-limit's own (the
 * `@noa/rate-limiter/fastify` entry, declared in fastify-rate-limit-names.ts); `noaRateLimit` are
 * ours alone, so that the two plugins can be installed, imported and registered side by side
 * (`@noa/rate-limiter/fastify-own-names`).
 */
export type FastifyPluginNames = 'rateLimit' | 'noaRateLimit';

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The plugin's check as a hook of your own, under a name @fastify/rate-limit does not claim
     * (`@noa/rate-limiter/fastify-own-names`; `fastify.rateLimit()` with `@noa/rate-limiter/fastify`):
     * for where the plugin's hook does not run or should run with other options:
     * `setNotFoundHandler({ preHandler: fastify.noaRateLimit() }, …)`, a route's `onRequest` or
     * `preHandler` under `global: false`. `options` override the plugin's as a route's
     * `config.noaRateLimit` does, parsed when the hook is made; the route's config is not read. A
     * request is checked once per distinct options: hooks of equal options (the same limiter,
     * functions and handler, equal values), the plugin's own included, count it once.
     */
    noaRateLimit(options?: RouteRateLimitOptions): FastifyRateLimitHook;
  }
  interface FastifyContextConfig {
    /**
     * @noa/rate-limiter overrides for this route, or `false` to exempt it, read by the plugin of
     * `@noa/rate-limiter/fastify-own-names` (that of `@noa/rate-limiter/fastify` reads `rateLimit`).
     */
    noaRateLimit?: RouteRateLimitOptions | false;
  }
  interface FastifyRequest {
    /** The rate-limit check's result (set by @noa/rate-limiter). */
    rateLimit?: RateLimitResult;
  }
}

/**
 * Warns (once, as a process warning) when `request` shows a `trustProxy` setting that breaks IP
 * keys (see {@link warnTrustProxy}); Fastify does not expose the setting, so requests tell:
 * `request.ips` exists only when some proxy is trusted. False once nothing is left to check.
 */
function checkTrustProxy(request: FastifyRequest): boolean {
  if (request.ips !== undefined) {
    if (trustsEveryAddress(request)) warnTrustProxy('permissive', "Fastify's trustProxy", "'127.0.0.1'");
    return false;
  }
  if (request.headers['x-forwarded-for'] === undefined) return true;
  warnTrustProxy('untrusted', "Fastify's trustProxy", "'127.0.0.1'");
  return false;
}

/**
 * True when the setting behind `request.ips` trusts every address (`trustProxy: true`): Fastify's
 * own `ips` getter is asked about a made-up chain of documentation addresses (RFC 5737), which no
 * list of real proxies names. Anything unexpected answers false (no warning).
 */
function trustsEveryAddress(request: FastifyRequest): boolean {
  const probe = {
    raw: {
      headers: { 'x-forwarded-for': '192.0.2.1, 198.51.100.1' },
      socket: { remoteAddress: '203.0.113.1' },
    },
  };
  try {
    for (let proto = Object.getPrototypeOf(request); proto !== null; proto = Object.getPrototypeOf(proto)) {
      const getter = Object.getOwnPropertyDescriptor(proto, 'ips')?.get;
      if (getter === undefined) continue;
      const chain: unknown = getter.call(probe);
      return Array.isArray(chain) && chain.length === 3;
    }
  } catch {
    // A Fastify whose getter reads more than this probe has: no warning rather than a failure.
  }
  return false;
}

/**
 * The route of a request no route matches (a 404): one endpoint, Fastify's catch-all pattern. Its
 * path (or its query string) would make every made-up URL, as a scanner sends, an endpoint of its
 * own: a fresh quota and a new store key under `perEndpoint`.
 */
const notFoundRoute = '*';

function factsOf(request: FastifyRequest, reply: FastifyReply): FastifyRequestFacts {
  return {
    request,
    reply,
    ip: request.ip,
    method: request.method,
    route: request.routeOptions.url ?? notFoundRoute,
    headers: request.headers,
    user: (request as unknown as { user?: unknown }).user,
  };
}

/**
 * What a hook does after a request's check: `'next'`, the route runs; `'stop'`, the reply was sent
 * (refused) or hijacked; a promise of either when something on the way was asynchronous.
 */
type Outcome = 'next' | 'stop' | Promise<'next' | 'stop'>;

const isPromiseLike = (value: unknown): value is PromiseLike<unknown> =>
  typeof (value as PromiseLike<unknown> | undefined)?.then === 'function';

/** The default refusal: problem+json with the status of `result` under `options`' `blockedStatus`. */
function sendDefaultProblem(reply: FastifyReply, options: ProblemOptions, result: RateLimitResult): void {
  const problem = quotaProblem(result, options);
  reply.code(problem.status).type('application/problem+json').send(problem);
}

/** Most distinct resolved options a registration remembers to tell equal ones apart (see `resolve`). */
const maxDistinctOptions = 1_000;

/**
 * Whether two resolved options make the same check: the same limiter, functions and handler (by
 * identity), and equal plain values (`headers` compared field by field).
 */
function sameOptions(a: FastifyOptions, b: FastifyOptions): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const key of keys) {
    const left: unknown = a[key as keyof FastifyOptions];
    const right: unknown = b[key as keyof FastifyOptions];
    if (Object.is(left, right)) continue;
    if (!isPlainObject(left) || !isPlainObject(right) || !isDeepStrictEqual(left, right)) return false;
  }
  return true;
}

function isPlainObject(value: unknown): value is object {
  if (value === null || typeof value !== 'object') return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** The plugin, reading a route's `config[names]` and decorating `fastify[names]`. */
const plugin = async (
  fastify: FastifyInstance,
  options: FastifyRateLimitOptions,
  names: FastifyPluginNames,
): Promise<void> => {
  const { global, hook, requestWasSuccessful, ...shared } = parseOptions(
    'fastifyRateLimit',
    pluginOptionsSchema,
    options,
  );
  // Per registration: a second one (another limiter) owes the same request its own refund.
  /** The refund owed by each counted request whose response decides it (see `refunderFor`). */
  const pendingRefunds = new WeakMap<FastifyRequest, (successful: boolean) => void>();
  const wasSuccessful: FastifyRequestWasSuccessful =
    requestWasSuccessful ?? ((_, reply) => defaultRequestWasSuccessful(reply.statusCode));
  // Keyed by the route's own config object: the options it resolves to, parsed once.
  const routeOptions = new WeakMap<RouteRateLimitOptions, FastifyOptions>();
  const configOf = (config: unknown): RouteRateLimitOptions | false | undefined =>
    (config as Partial<Record<FastifyPluginNames, RouteRateLimitOptions | false>> | undefined)?.[names];
  // One object per distinct options, so that hooks made from equal ones (two objects, or a route's
  // config.rateLimit and a fastify.rateLimit() with the same) are one check per request: `enforce`
  // tells a request checked already by the identity of its options.
  const distinctOptions: FastifyOptions[] = [];
  // `component` names the options in a ConfigError: a route's config.rateLimit, or fastify.rateLimit().
  const resolve = (component: string, config: RouteRateLimitOptions): FastifyOptions => {
    let resolved = routeOptions.get(config);
    if (resolved === undefined) {
      const parsedRoute = parseOptions(component, routeRateLimitSchema, config);
      // Only what the route wrote overrides the plugin's options (not the schema's defaults).
      const overrides = Object.fromEntries(Object.entries(parsedRoute).filter(([name]) => name in config));
      // Field by field for `headers` too: `{ legacy: true }` adds the legacy fields to the plugin's
      // draft, it does not bring back the schema's defaults for `standard` and `draft`.
      if (parsedRoute.headers !== undefined && config.headers !== undefined)
        overrides.headers = {
          ...shared.headers,
          ...Object.fromEntries(
            Object.entries(parsedRoute.headers).filter(([name]) => name in (config.headers as object)),
          ),
        };
      const merged = { ...shared, ...overrides } as FastifyOptions;
      resolved = sameOptions(merged, shared)
        ? shared
        : distinctOptions.find((known) => sameOptions(known, merged));
      if (resolved === undefined) {
        resolved = merged;
        // Bounded: hooks made per request with options of their own would otherwise grow it forever.
        if (distinctOptions.length < maxDistinctOptions) distinctOptions.push(merged);
      }
      routeOptions.set(config, resolved);
    }
    return resolved;
  };
  // A second registration (a global limiter and a stricter one) shares the decorator.
  if (!fastify.hasRequestDecorator('rateLimit')) fastify.decorateRequest('rateLimit', undefined);
  // Routes added after the plugin are checked at registration, so a bad option fails at start-up.
  fastify.addHook('onRoute', (route) => {
    const config = configOf(route.config);
    if (config !== undefined && config !== false)
      resolve(`route ${String(route.method)} ${route.url} config.${names}`, config);
  });
  // The trust-proxy settings that break IP keys, as the Express middleware warns about them.
  let watchTrustProxy = true;
  // Once per registration, as the trust-proxy warnings.
  let onUndefinedIp: (() => void) | undefined = () => {
    onUndefinedIp = undefined;
    warnUndefinedIp();
  };
  /** The options a request is checked with by the plugin's hook, or undefined when its route is not limited. */
  const activeFor = (request: FastifyRequest): FastifyOptions | undefined => {
    // Read at request time, not only in onRoute: routes declared before the plugin keep their config.
    const config = configOf(request.routeOptions.config);
    if (config === false || (config === undefined && !global)) return undefined;
    if (config === undefined) return shared;
    return resolve(
      `route ${String(request.routeOptions.method)} ${request.routeOptions.url} config.${names}`,
      config,
    );
  };
  /** The options each request was checked with, so that a manual hook with the same ones does not count it twice. */
  const checkedWith = new WeakMap<FastifyRequest, FastifyOptions | FastifyOptions[]>();
  /** Whether `request` is still to be checked with `active` (each distinct options count it once). */
  const firstCheck = (request: FastifyRequest, active: FastifyOptions): boolean => {
    // One options object per request is the rule; a list only for hooks of several options.
    const checked = checkedWith.get(request);
    if (checked === undefined) checkedWith.set(request, active);
    else if (checked === active || (Array.isArray(checked) && checked.includes(active))) return false;
    else if (Array.isArray(checked)) checked.push(active);
    else checkedWith.set(request, [checked, active]);
    if (watchTrustProxy) watchTrustProxy = checkTrustProxy(request);
    return active.limiter instanceof RateLimiter;
  };
  /**
   * The request's check. `'next'`: the route is next; `'stop'`: the reply was sent (refused); else
   * the promise of one of the two, when something on the way is asynchronous. A memory store
   * without `skip` decides in the caller's tick (checkSync), unless a request function returns a
   * promise. Throws what the request functions or the limiter throw.
   */
  const enforce = (request: FastifyRequest, reply: FastifyReply, active: FastifyOptions): Outcome => {
    if (!firstCheck(request, active)) return 'next';
    const facts = factsOf(request, reply);
    if (active.skip === undefined && active.limiter.store instanceof MemoryStore) {
      const input = checkInputOf(facts, active, onUndefinedIp);
      if (!(input instanceof Promise))
        return answer(request, reply, active, input, active.limiter.checkSync(input));
      return checkAsync(request, reply, active, facts, input);
    }
    return checkAsync(request, reply, active, facts, undefined);
  };
  /** The check when something on the way is asynchronous (store, `skip`, a request function). */
  const checkAsync = async (
    request: FastifyRequest,
    reply: FastifyReply,
    active: FastifyOptions,
    facts: FastifyRequestFacts,
    given: Promise<CheckInput> | undefined,
  ): Promise<'next' | 'stop'> => {
    let pending: CheckInput | Promise<CheckInput> | undefined = given;
    if (pending === undefined) {
      if (active.skip !== undefined && (await active.skip(facts))) return 'next';
      pending = checkInputOf(facts, active, onUndefinedIp);
    }
    const input = pending instanceof Promise ? await pending : pending;
    return answer(request, reply, active, input, await active.limiter.check(input));
  };
  /** After the check: `request.rateLimit`, the refund owed, the headers, then the refusal or the queue delay. */
  const answer = (
    request: FastifyRequest,
    reply: FastifyReply,
    active: FastifyOptions,
    input: CheckInput,
    result: RateLimitResult,
  ): Outcome => {
    request.rateLimit = result;
    const refund = refunderFor(active, input, result);
    if (refund !== undefined) {
      // Gone while the request was being checked: its onRequestAbort came before there was a refund.
      if (reply.raw.closed && !reply.raw.writableFinished) refund(false);
      else {
        // A manual hook with other options (another limiter) owes the request a refund of its own.
        const earlier = pendingRefunds.get(request);
        pendingRefunds.set(
          request,
          earlier === undefined
            ? refund
            : (successful) => {
                earlier(successful);
                refund(successful);
              },
        );
      }
    }
    // Another registration (or hook) may have checked the request already: its policies stay listed.
    reply.headers(
      withEarlierPolicies(rateLimitHeaders(result, active.headers, active.limiter.clock.now()), (name) =>
        reply.getHeader(name),
      ),
    );
    if (!result.allowed) return refuse(request, reply, active, result);
    if (result.delayMs === 0) return 'next';
    // Gone during its queue delay: no route to run for nobody (hijacked, the lifecycle stops
    // here), and its slot is a live client's.
    return waitOutQueueDelay(reply.raw, result.delayMs).then((served) => {
      if (served) return 'next';
      giveBackUnserved(active.limiter, input, result, refund);
      reply.hijack();
      return 'stop';
    });
  };
  /** Sends the refusal: the handler's, else (or when it sent nothing) the default problem. */
  const refuse = (
    request: FastifyRequest,
    reply: FastifyReply,
    active: FastifyOptions,
    result: RateLimitResult,
  ): Outcome => {
    if (active.handler !== undefined) {
      const handled = active.handler(request, reply, result, { blockedStatus: active.blockedStatus });
      // Awaited (a Reply is a thenable too): its rejection reaches Fastify's error handler.
      if (isPromiseLike(handled))
        return Promise.resolve(handled).then(() => {
          if (!reply.sent) sendDefaultProblem(reply, active, result);
          return 'stop';
        });
      // A handler that sent nothing would let the refused request through to the route.
      if (reply.sent) return 'stop';
    }
    sendDefaultProblem(reply, active, result);
    return 'stop';
  };
  /**
   * The plugin's hook, a callback hook (Fastify 5 calls it with `done` and waits for a promise
   * only when one is returned): a check decided in this tick calls `done()` at once (or, refused,
   * sends the reply and does not call it); an asynchronous one returns its promise, as an async
   * hook does.
   */
  const limit = (
    request: FastifyRequest,
    reply: FastifyReply,
    done: HookHandlerDoneFunction,
  ): Promise<unknown> | undefined => {
    let outcome: Outcome;
    try {
      const active = activeFor(request);
      outcome = active === undefined ? 'next' : enforce(request, reply, active);
    } catch (error) {
      done(error as Error);
      return undefined;
    }
    // Outside the try: an error of what runs next in the lifecycle is not this check's.
    if (outcome === 'next') done();
    else if (outcome !== 'stop') return outcome.then((after) => (after === 'stop' ? reply : undefined));
    return undefined;
  };
  // Callback hooks that return at once when no refund is pending: most requests owe none.
  fastify.addHook('onResponse', (request, reply, done) => {
    const refund = pendingRefunds.get(request);
    if (refund === undefined) return done();
    pendingRefunds.delete(request);
    // A function that throws (even synchronously) or rejects cannot tell: a failure, as in Express.
    return Promise.resolve()
      .then(() => wasSuccessful(request, reply))
      .catch(() => false)
      .then(refund);
  });
  // The client went away before the response: a failure.
  fastify.addHook('onRequestAbort', (request, done) => {
    const refund = pendingRefunds.get(request);
    if (refund !== undefined) {
      pendingRefunds.delete(request);
      refund(false);
    }
    done();
  });
  // The first registration in a context names the decorator (a second one there would clash).
  if (!fastify.hasDecorator(names))
    fastify.decorate(names, (options?: RouteRateLimitOptions): FastifyRateLimitHook => {
      const active = options === undefined ? shared : resolve(`fastify.${names}()`, options);
      return async (request, reply) => {
        const outcome = await enforce(request, reply, active);
        // Refused: resolved once the reply is sent (a Reply is a thenable), as `return reply` in an async hook.
        return outcome === 'stop' ? reply : undefined;
      };
    });
  if (hook === 'preHandler') fastify.addHook('preHandler', limit);
  else fastify.addHook('onRequest', limit);
};

/**
 * The Fastify plugin reading a route's `config[names]` and decorating `fastify[names]()`: the
 * plugin of `@noa/rate-limiter/fastify` is `'rateLimit'`'s, that of
 * `@noa/rate-limiter/fastify-own-names` `'noaRateLimit'`'s.
 */
export function fastifyPluginNamed(names: FastifyPluginNames): FastifyPluginAsync<FastifyRateLimitOptions> {
  const named: FastifyPluginAsync<FastifyRateLimitOptions> = (fastify, options) =>
    plugin(fastify, options, names);
  return fastifyPlugin(named, { fastify: '5.x', name: '@noa/rate-limiter' });
}

/**
 * The Fastify plugin of `@noa/rate-limiter/fastify-own-names`, exported there as `fastifyRateLimit`:
 * the same plugin under names @fastify/rate-limit does not claim, so that both can be installed,
 * imported and registered in one app while routes move over. A route's options are its
 * `config.noaRateLimit` (`config.rateLimit` is left to @fastify/rate-limit, not read), the manual
 * hook is `fastify.noaRateLimit()` (`fastify.rateLimit` is not decorated); `request.rateLimit` is
 * the result, as with `@noa/rate-limiter/fastify`.
 */
export const fastifyRateLimitOwnNames = fastifyPluginNamed('noaRateLimit');

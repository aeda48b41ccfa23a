import { isDeepStrictEqual } from 'node:util';
import { parseOptions } from '@noa/core';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import fastifyPlugin from 'fastify-plugin';
import { z } from 'zod';
import { type ProblemOptions, quotaProblem, rateLimitHeaders, withEarlierPolicies } from '../headers.js';
import { RateLimiter } from '../limiter.js';
import type { RateLimitResult } from '../result.js';
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
  const limit = async (request: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
    // Read at request time, not only in onRoute: routes declared before the plugin keep their config.
    const config = configOf(request.routeOptions.config);
    if (config === false || (config === undefined && !global)) return;
    const route =
      config === undefined
        ? undefined
        : resolve(
            `route ${String(request.routeOptions.method)} ${request.routeOptions.url} config.${names}`,
            config,
          );
    return enforce(request, reply, route ?? shared);
  };
  /** The options each request was checked with, so that a manual hook with the same ones does not count it twice. */
  const checkedWith = new WeakMap<FastifyRequest, FastifyOptions | FastifyOptions[]>();
  const enforce = async (
    request: FastifyRequest,
    reply: FastifyReply,
    active: FastifyOptions,
  ): Promise<unknown> => {
    // One options object per request is the rule; a list only for hooks of several options.
    const checked = checkedWith.get(request);
    if (checked === undefined) checkedWith.set(request, active);
    else if (checked === active || (Array.isArray(checked) && checked.includes(active))) return;
    else if (Array.isArray(checked)) checked.push(active);
    else checkedWith.set(request, [checked, active]);
    if (watchTrustProxy) watchTrustProxy = checkTrustProxy(request);
    if (!(active.limiter instanceof RateLimiter)) return;
    const facts = factsOf(request, reply);
    if (active.skip !== undefined && (await active.skip(facts))) return;
    const pending = checkInputOf(facts, active, onUndefinedIp);
    const input = pending instanceof Promise ? await pending : pending;
    const result = await active.limiter.check(input);
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
    if (!result.allowed) {
      if (active.handler !== undefined) {
        const handled = await active.handler(request, reply, result, { blockedStatus: active.blockedStatus });
        // A handler that sent nothing would let the refused request through to the route.
        if (reply.sent) return handled;
      }
      const problem = quotaProblem(result, active);
      return reply.code(problem.status).type('application/problem+json').send(problem);
    }
    // Gone during its queue delay: no route to run for nobody (hijacked, the lifecycle stops
    // here), and its slot is a live client's.
    if (result.delayMs > 0 && !(await waitOutQueueDelay(reply.raw, result.delayMs))) {
      giveBackUnserved(active.limiter, input, result, refund);
      reply.hijack();
    }
    return undefined;
  };
  fastify.addHook('onResponse', async (request, reply) => {
    const refund = pendingRefunds.get(request);
    if (refund === undefined) return;
    pendingRefunds.delete(request);
    // A function that throws (even synchronously) or rejects cannot tell: a failure, as in Express.
    refund(
      await Promise.resolve()
        .then(() => wasSuccessful(request, reply))
        .catch(() => false),
    );
  });
  // The client went away before the response: a failure.
  fastify.addHook('onRequestAbort', async (request) => {
    pendingRefunds.get(request)?.(false);
    pendingRefunds.delete(request);
  });
  // The first registration in a context names the decorator (a second one there would clash).
  if (!fastify.hasDecorator(names))
    fastify.decorate(names, (options?: RouteRateLimitOptions): FastifyRateLimitHook => {
      const active = options === undefined ? shared : resolve(`fastify.${names}()`, options);
      return (request, reply) => enforce(request, reply, active);
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

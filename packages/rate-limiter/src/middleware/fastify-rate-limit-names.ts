// The plugin of `@noa/rate-limiter/fastify`, under @fastify/rate-limit's names (`config.rateLimit`,
// `fastify.rateLimit()`), so that its users move over by changing the import and the options. Its
// declarations are apart from the plugin's own (fastify.ts) because they clash with
// @fastify/rate-limit's (TS2717): a program with both imports `@noa/rate-limiter/fastify-own-names`,
// which never reaches this file.
import { type FastifyRateLimitHook, fastifyPluginNamed, type RouteRateLimitOptions } from './fastify.js';

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The plugin's check as a hook of your own (@noa/rate-limiter; @fastify/rate-limit's
     * `fastify.rateLimit()`), for where the plugin's hook does not run or should run with other
     * options: `setNotFoundHandler({ preHandler: fastify.rateLimit() }, …)`, a route's `onRequest`
     * or `preHandler` under `global: false`. `options` override the plugin's as a route's
     * `config.rateLimit` does, parsed when the hook is made; the route's `config.rateLimit` is not
     * read. A request is checked once per distinct options: hooks of equal options (the same
     * limiter, functions and handler, equal values), the plugin's own included, count it once.
     */
    rateLimit(options?: RouteRateLimitOptions): FastifyRateLimitHook;
  }
  interface FastifyContextConfig {
    /** @noa/rate-limiter overrides for this route, or `false` to exempt it. */
    rateLimit?: RouteRateLimitOptions | false;
  }
}

/**
 * Fastify plugin (fastify-plugin, so it applies to the whole instance): checks requests in an
 * `onRequest` hook (or `preHandler`, option `hook`), sets the rate-limit headers, replies 429
 * problem+json when refused (413, without `Retry-After`, for a cost no limit's capacity can ever
 * admit; 503, without rate-limit fields, when `failMode: 'closed'` refuses because the store cannot
 * be reached). Routes override options with `config: { rateLimit: { … } }` or opt out with
 * `config: { rateLimit: false }`; `fastify.rateLimit(options?)` makes the check a hook of your own.
 * `request.ip` honours Fastify's `trustProxy` option (a process warning says when it looks wrong,
 * as the Express middleware's does). Beside @fastify/rate-limit, whose names these are, use the
 * same plugin from `@noa/rate-limiter/fastify-own-names`.
 */
export const fastifyRateLimit = fastifyPluginNamed('rateLimit');

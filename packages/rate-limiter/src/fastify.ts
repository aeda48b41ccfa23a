// The Fastify plugin's entry, `@noa/rate-limiter/fastify`: apart from the main entry, so that only
// its users need fastify's types (a declaration importing an optional peer is TS2307 without it).
// Its plugin claims @fastify/rate-limit's names; `@noa/rate-limiter/fastify-own-names` is the
// same plugin under names of its own, for an app that has both.
export type {
  FastifyRateLimitHook,
  FastifyRateLimitOptions,
  FastifyRefusalHandler,
  FastifyRequestFacts,
  FastifyRequestWasSuccessful,
  RouteRateLimitOptions,
} from './middleware/fastify.js';
export { fastifyRateLimit } from './middleware/fastify-rate-limit-names.js';

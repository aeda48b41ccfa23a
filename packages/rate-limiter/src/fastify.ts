// The Fastify plugin's entry, `@noa/rate-limiter/fastify`: apart from the main entry, so that only
// its users need fastify's types (a declaration importing an optional peer is TS2307 without it).
export {
  type FastifyRateLimitHook,
  type FastifyRateLimitOptions,
  type FastifyRefusalHandler,
  type FastifyRequestFacts,
  type FastifyRequestWasSuccessful,
  fastifyRateLimit,
  type RouteRateLimitOptions,
} from './middleware/fastify.js';

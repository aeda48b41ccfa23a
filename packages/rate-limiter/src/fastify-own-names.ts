// `@noa/rate-limiter/fastify-own-names`: the Fastify plugin under names @fastify/rate-limit does
// not claim (`config.noaRateLimit`, `fastify.noaRateLimit()`), so that an app migrating from it
// can install, import and register both (their type declarations clash otherwise: TS2717).
export {
  type FastifyRateLimitHook,
  type FastifyRateLimitOptions,
  type FastifyRefusalHandler,
  type FastifyRequestFacts,
  type FastifyRequestWasSuccessful,
  fastifyRateLimitOwnNames as fastifyRateLimit,
  type RouteRateLimitOptions,
} from './middleware/fastify.js';

// A Fastify user's code with `@noa/rate-limiter/fastify`, type-checked by fastify-beside-types.test.ts
// (strict, skipLibCheck false): @fastify/rate-limit's names, `config.rateLimit` and
// `fastify.rateLimit()`, stay this entry's, and the names of `@noa/rate-limiter/fastify-own-names`
// are there too.
import Fastify, { type FastifyContextConfig } from 'fastify';
import { fastifyRateLimit } from '../../src/fastify.js';
import { createRateLimiter } from '../../src/index.js';

const app = Fastify();
const limiter = createRateLimiter({ limits: [{ limit: 10, windowMs: 60_000 }] });
await app.register(fastifyRateLimit, { limiter, global: false });
app.get('/', { config: { rateLimit: { keyBy: 'api-key' } } }, async (request) => ({
  remaining: request.rateLimit?.remaining,
}));
app.get('/hooked', { onRequest: app.rateLimit({ perEndpoint: true }) }, async () => 'hooked');
app.setNotFoundHandler({ preHandler: app.rateLimit() }, async (_request, reply) => reply.code(404).send());
export const route: FastifyContextConfig = { rateLimit: { cost: 2, blockedStatus: 403 } };
export const exempt: FastifyContextConfig = { rateLimit: false };
// @ts-expect-error `max` is @fastify/rate-limit's, not an option of ours.
export const foreign: FastifyContextConfig = { rateLimit: { max: 3 } };

// A user migrating from @fastify/rate-limit, both plugins in one app while routes move over,
// type-checked by fastify-beside-types.test.ts (skipLibCheck false; `@fastify/rate-limit` is the
// stand-in fastify-rate-limit.d.cts). A .mts file, so the workspace's own tsc (`**/*.ts`), which
// has no `@fastify/rate-limit`, leaves it out.
import fastifyRateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyContextConfig } from 'fastify';
import { fastifyRateLimit as noaRateLimit } from '../../src/fastify-own-names.js';
import { createRateLimiter } from '../../src/index.js';

const app = Fastify();
const limiter = createRateLimiter({ limits: [{ limit: 10, windowMs: 60_000 }] });
await app.register(fastifyRateLimit, { global: false, max: 100, timeWindow: '1 minute' });
await app.register(noaRateLimit, { limiter, global: false });
// Routes not moved yet keep @fastify/rate-limit's names.
app.get('/old', { config: { rateLimit: { max: 3, timeWindow: '1 minute' } } }, async () => 'old');
app.get('/old-hook', { onRequest: app.rateLimit({ max: 3 }) }, async () => 'old');
// Routes moved over name ours.
app.get('/new', { config: { noaRateLimit: { keyBy: 'api-key', cost: 2 } } }, async (request) => ({
  remaining: request.rateLimit?.remaining,
}));
app.get('/new-hook', { onRequest: app.noaRateLimit({ perEndpoint: true }) }, async () => 'new');
app.get('/exempt', { config: { noaRateLimit: false, rateLimit: false } }, async () => 'exempt');
// Each name takes its own plugin's options only (a route's `config` is checked as written in a
// FastifyContextConfig; inline, Fastify infers a route's config type of its own).
export const moved: FastifyContextConfig = { noaRateLimit: { limiter, keyBy: 'user' }, rateLimit: false };
export const notMoved: FastifyContextConfig = { rateLimit: { max: 3, timeWindow: 60_000 } };
// @ts-expect-error `max` is @fastify/rate-limit's.
export const mixed: FastifyContextConfig = { noaRateLimit: { max: 3 } };
// @ts-expect-error `keyBy` is ours.
export const mixedOld: FastifyContextConfig = { rateLimit: { keyBy: 'ip' } };
// @ts-expect-error `keyBy` is ours.
app.rateLimit({ keyBy: 'ip' });
// @ts-expect-error `timeWindow` is @fastify/rate-limit's.
app.noaRateLimit({ timeWindow: '1 minute' });

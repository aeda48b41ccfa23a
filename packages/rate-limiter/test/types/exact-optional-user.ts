// A user's code compiled with `exactOptionalPropertyTypes: true`, type-checked by
// exact-optional-types.test.ts: every options object the package takes accepts a field whose
// value may be undefined (read from a config file or the environment), as the option is
// optional. Without `| undefined` on the field, such a user gets TS2379 ("Consider adding
// 'undefined' to the types of the target's properties") for passing what the option allows.
import type { Redis } from 'ioredis';
import { expressRateLimit } from '../../src/express.js';
import { fastifyRateLimit } from '../../src/fastify.js';
import {
  createRateLimiter,
  MemoryStore,
  quotaProblem,
  type RateLimitResult,
  rateLimitHeaders,
} from '../../src/index.js';
import { RedisStore } from '../../src/redis.js';

declare const text: string | undefined;
declare const count: number | undefined;
declare const flag: boolean | undefined;
declare const signal: AbortSignal | undefined;
declare const client: Redis;
declare const result: RateLimitResult;

export const limiter = createRateLimiter({
  name: text,
  prefix: text,
  limits: [{ name: text, limit: 5, windowMs: 1_000, burst: count }],
  deadlineMs: count,
  store: flag === true ? new MemoryStore({ maxKeys: count }) : undefined,
});
export const redisStore = new RedisStore({ client, prefix: text });
export const checked = limiter.check({ key: 'k', ip: text, role: text, cost: count });
export const acquired = limiter.acquire('k', { timeoutMs: count, signal, maxQueue: count });
export const middleware = expressRateLimit({
  limiter,
  skipFailedRequests: flag,
  headers: { legacy: flag, standard: flag },
});
export const plugin = fastifyRateLimit;
export const headers = rateLimitHeaders(result, {
  standard: flag,
  draft: flag === true ? 'draft-7' : undefined,
  legacy: flag,
  legacyReset: flag === true ? 'delta-seconds' : undefined,
});
export const problem = quotaProblem(result, { blockedStatus: flag === true ? 403 : undefined });

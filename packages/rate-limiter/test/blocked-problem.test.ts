import { ManualClock } from '@noa/core';
import { afterAll, describe, expect, it } from 'vitest';
import { expressRateLimit, sendProblem } from '../src/express.js';
import {
  abnormalUsageDetectedType,
  ConfigError,
  createRateLimiter,
  quotaExceededType,
  quotaProblem,
} from '../src/index.js';
import { type App, expressApp, fastifyApp } from './http-apps.js';

// draft-ietf-httpapi-ratelimit-headers-10 section 5.3 defines "abnormal-usage-detected" (429) for
// "a pattern of requests that suggest unintentional or malicious behaviour": what an auto-block or
// a block() says, where quota-exceeded said the client only spent its quota. `blockedStatus: 403`
// answers blocked keys as @fastify/rate-limit's `ban` answers banned clients.

const start = 1_700_000_040_000;
const apps: App[] = [];
afterAll(async () => {
  for (const app of apps) await app.close();
});

const autoBlocking = (clock: ManualClock) =>
  createRateLimiter({
    limits: [{ name: 'burst', limit: 1, windowMs: 60_000 }],
    autoBlock: { violations: 2, withinMs: 60_000, blockMs: 300_000 },
    clock,
  });

describe('quotaProblem of a blocked key', () => {
  it('is 429 abnormal-usage-detected with the retry time, naming the violated limits', async () => {
    const limiter = autoBlocking(new ManualClock(start));
    const outcomes = [];
    for (let index = 0; index < 4; index += 1) outcomes.push(await limiter.check('k'));
    const blocked = outcomes.at(-1)!;
    expect(blocked.outcome).toBe('blocked');
    expect(quotaProblem(blocked)).toMatchObject({
      type: abnormalUsageDetectedType,
      title: 'Request not satisfied due to detection of abnormal request pattern',
      status: 429,
      retryAfter: 300,
    });
    expect(abnormalUsageDetectedType).toBe(
      'https://iana.org/assignments/http-problem-types#abnormal-usage-detected',
    );
    // Spending the quota is not abnormal: it stays quota-exceeded.
    expect(quotaProblem(outcomes[1]!)).toMatchObject({ type: quotaExceededType, status: 429 });
  });

  it('is 403 with blockedStatus 403; a limited or deny-listed answer keeps its status', async () => {
    const limiter = createRateLimiter({
      limits: [{ name: 'burst', limit: 1, windowMs: 60_000 }],
      deny: ['198.51.100.9'],
      clock: new ManualClock(start),
    });
    await limiter.block('b', 60_000);
    const blocked = await limiter.check('b');
    expect(quotaProblem(blocked, { blockedStatus: 403 })).toMatchObject({
      type: abnormalUsageDetectedType,
      status: 403,
      retryAfter: 60,
    });
    await limiter.check('l');
    const limited = await limiter.check('l');
    expect(quotaProblem(limited, { blockedStatus: 403 })).toMatchObject({
      type: quotaExceededType,
      status: 429,
    });
    const denied = await limiter.check({ key: 'd', ip: '198.51.100.9' });
    expect(quotaProblem(denied, { blockedStatus: 403 })).toMatchObject({ type: 'about:blank', status: 403 });
  });

  it('blockedStatus other than 429 or 403 is refused, naming the field', () => {
    const limiter = createRateLimiter({ limits: [{ limit: 1, windowMs: 1_000 }] });
    // @ts-expect-error: only 429 and 403
    const bad = () => expressRateLimit({ limiter, blockedStatus: 401 });
    expect(bad).toThrow(ConfigError);
    expect(bad).toThrow(/blockedStatus/);
  });
});

for (const [name, serve] of [
  ['Express', expressApp],
  ['Fastify', fastifyApp],
] as const)
  describe(`${name} over HTTP: a blocked key`, () => {
    it('gets 429 abnormal-usage-detected with Retry-After once auto-blocked', async () => {
      const app = await serve(autoBlocking(new ManualClock(start)));
      apps.push(app);
      const statuses: number[] = [];
      let last: Response | undefined;
      for (let index = 0; index < 4; index += 1) {
        last = await fetch(app.base);
        statuses.push(last.status);
      }
      expect(statuses).toEqual([200, 429, 429, 429]);
      expect(last!.headers.get('retry-after')).toBe('300');
      expect(await last!.json()).toMatchObject({ type: abnormalUsageDetectedType, status: 429 });
    });

    it('gets 403 with blockedStatus: 403 (block() too), and still Retry-After', async () => {
      const limiter = createRateLimiter({
        limits: [{ name: 'burst', limit: 5, windowMs: 60_000 }],
        clock: new ManualClock(start),
      });
      const app = await serve(limiter, { blockedStatus: 403 });
      apps.push(app);
      expect((await fetch(app.base)).status).toBe(200);
      await limiter.block('ip:127.0.0.1', 120_000);
      const refused = await fetch(app.base);
      expect(refused.status).toBe(403);
      expect(refused.headers.get('retry-after')).toBe('120');
      expect(await refused.json()).toMatchObject({
        type: abnormalUsageDetectedType,
        status: 403,
        retryAfter: 120,
      });
    });
  });

describe('blockedStatus reaches a handler of your own, over HTTP', () => {
  const blockedOnce = async (limiter: ReturnType<typeof createRateLimiter>, base: string) => {
    expect((await fetch(base)).status).toBe(200);
    await limiter.block('ip:127.0.0.1', 120_000);
    return fetch(base);
  };
  const freshLimiter = () =>
    createRateLimiter({
      limits: [{ name: 'burst', limit: 5, windowMs: 60_000 }],
      clock: new ManualClock(start),
    });

  it('Express: handler: sendProblem answers a blocked key 403 under blockedStatus: 403', async () => {
    const limiter = freshLimiter();
    const app = await expressApp(limiter, { blockedStatus: 403, handler: sendProblem });
    apps.push(app);
    const refused = await blockedOnce(limiter, app.base);
    expect(refused.status).toBe(403);
    expect(refused.headers.get('retry-after')).toBe('120');
    expect(await refused.json()).toMatchObject({ type: abnormalUsageDetectedType, status: 403 });
  });

  it('Express: a handler that wraps sendProblem is given the options it passes on', async () => {
    const limiter = freshLimiter();
    const seen: unknown[] = [];
    const app = await expressApp(limiter, {
      blockedStatus: 403,
      handler: (req, res, result, options) => {
        seen.push(options);
        sendProblem(req, res, result, options);
      },
    });
    apps.push(app);
    expect((await blockedOnce(limiter, app.base)).status).toBe(403);
    expect(seen).toEqual([{ blockedStatus: 403 }]);
  });

  it('Fastify: a handler builds the 403 with quotaProblem(result, options)', async () => {
    const limiter = freshLimiter();
    const app = await fastifyApp(limiter, {
      blockedStatus: 403,
      handler: (_request, reply, result, options) => {
        const problem = quotaProblem(result, options);
        return reply.code(problem.status).type('application/problem+json').send(problem);
      },
    });
    apps.push(app);
    const refused = await blockedOnce(limiter, app.base);
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({ type: abnormalUsageDetectedType, status: 403 });
  });

  it("Fastify: a route's own blockedStatus reaches the plugin's handler", async () => {
    const limiter = freshLimiter();
    const Fastify = (await import('fastify')).default;
    const { fastifyRateLimit } = await import('../src/fastify.js');
    const server = Fastify();
    const seen: unknown[] = [];
    await server.register(fastifyRateLimit, {
      limiter,
      handler: (_request, reply, result, options) => {
        seen.push(options);
        const problem = quotaProblem(result, options);
        return reply.code(problem.status).send(problem);
      },
    });
    server.get('/', { config: { rateLimit: { blockedStatus: 403 } } }, async () => 'ok');
    await limiter.block('ip:127.0.0.1', 120_000);
    const refused = await server.inject({ url: '/', remoteAddress: '127.0.0.1' });
    expect(refused.statusCode).toBe(403);
    expect(seen).toEqual([{ blockedStatus: 403 }]);
    await server.close();
  });
});

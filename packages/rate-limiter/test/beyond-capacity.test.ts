import type { AddressInfo } from 'node:net';
import { ManualClock } from '@noa/core';
import express from 'express';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expressRateLimit } from '../src/express.js';
import { fastifyRateLimit } from '../src/fastify.js';
import {
  AcquireError,
  type AlgorithmName,
  algorithmNames,
  CostExceedsCapacityError,
  costExceedsCapacityType,
  createRateLimiter,
  type LimitInput,
  quotaProblem,
  RateLimitedError,
  type RateLimitStore,
  rateLimitHeaders,
} from '../src/index.js';

// A request whose cost is more than a limit can ever admit (cost 10 against a burst of 5) is
// refused whatever the key's state and whenever it is retried: it must say so (outcome
// 'exceeds-capacity', retryAfterMs Infinity, no Retry-After, a 413 of its own problem type),
// never "retry in 0 s", and it counts nothing.

const start = 1_700_000_000_000;

/** A limit of 5 points (capacity 5) of `algorithm`, named `burst`. */
const burstOf = (algorithm: AlgorithmName): LimitInput => ({
  name: 'burst',
  algorithm,
  limit: 5,
  windowMs: 60_000,
});

describe('check() of a cost above a limit’s capacity', () => {
  for (const algorithm of algorithmNames) {
    it(`${algorithm}: refused as 'exceeds-capacity' on an unused key, never a retry in 0 ms, counting nothing`, async () => {
      const clock = new ManualClock(start);
      // One limit (the memory store's fast path) and two limits (its general path).
      for (const limits of [
        [burstOf(algorithm)],
        [burstOf(algorithm), { name: 'daily', limit: 1_000, windowMs: 86_400_000 }],
      ]) {
        const limiter = createRateLimiter({ limits, clock });
        const result = await limiter.check({ key: 'k', cost: 10 });
        expect(result).toMatchObject({
          allowed: false,
          outcome: 'exceeds-capacity',
          retryAfterMs: Number.POSITIVE_INFINITY,
          delayMs: 0,
          remaining: 5,
          source: 'store',
        });
        expect(result.limits[0]).toMatchObject({
          name: 'burst',
          allowed: false,
          remaining: 5,
          retryAfterMs: Number.POSITIVE_INFINITY,
        });
        if (limits.length === 2)
          expect(result.limits[1]).toMatchObject({ name: 'daily', allowed: true, remaining: 1_000 });
        expect(limiter.checkSync({ key: 'k', cost: 10 })).toMatchObject({ outcome: 'exceeds-capacity' });
        // Nothing was counted: the whole capacity is still there.
        expect(await limiter.check({ key: 'k', cost: 5 })).toMatchObject({ allowed: true, remaining: 0 });
        // And on a used, exhausted key it is still "never", not the window's reset.
        expect(await limiter.check({ key: 'k', cost: 6 })).toMatchObject({
          outcome: 'exceeds-capacity',
          retryAfterMs: Number.POSITIVE_INFINITY,
          remaining: 0,
        });
        await limiter.close();
      }
    });
  }

  it('a queueing leaky bucket admits up to what its queue can delay, and says never above it', async () => {
    // burst 2 + a queue of 1,000 ms at 5 per 1,000 ms: at most 7 points at once.
    const limiter = createRateLimiter({
      limits: [{ algorithm: 'leaky-bucket', limit: 5, windowMs: 1_000, burst: 2, queueMaxDelayMs: 1_000 }],
      clock: new ManualClock(start),
    });
    expect(await limiter.check({ key: 'q', cost: 7 })).toMatchObject({ allowed: true, delayMs: 1_000 });
    expect(await limiter.check({ key: 'other', cost: 8 })).toMatchObject({ outcome: 'exceeds-capacity' });
    await limiter.close();
  });

  it('a role with a larger capacity admits the cost; allow-listed and unlimited callers are never limited', async () => {
    const limiter = createRateLimiter({
      limits: [burstOf('token-bucket')],
      roles: {
        partner: [{ algorithm: 'token-bucket', limit: 5, windowMs: 60_000, burst: 20 }],
        admin: 'unlimited',
      },
      allow: ['198.51.100.7'],
      clock: new ManualClock(start),
    });
    expect(await limiter.check({ key: 'p', cost: 10, role: 'partner' })).toMatchObject({
      allowed: true,
      remaining: 10,
    });
    expect(await limiter.check({ key: 'a', cost: 10, role: 'admin' })).toMatchObject({
      outcome: 'unlimited',
    });
    expect(await limiter.check({ key: 'l', cost: 10, ip: '198.51.100.7' })).toMatchObject({
      outcome: 'allowlisted',
    });
    await limiter.close();
  });

  it('records no violation: auto-block never blocks a key for costs it could never admit', async () => {
    const limiter = createRateLimiter({
      limits: [burstOf('fixed-window')],
      autoBlock: { violations: 2, withinMs: 60_000, blockMs: 60_000 },
      clock: new ManualClock(start),
    });
    for (let index = 0; index < 5; index += 1)
      expect(await limiter.check({ key: 'b', cost: 6 })).toMatchObject({ outcome: 'exceeds-capacity' });
    expect(await limiter.check({ key: 'b', cost: 1 })).toMatchObject({ allowed: true, outcome: 'allowed' });
    await limiter.close();
  });

  it('a blocked key is still told the cost can never be admitted (the block is not the reason to wait)', async () => {
    const limiter = createRateLimiter({ limits: [burstOf('sliding-window')], clock: new ManualClock(start) });
    await limiter.block('blocked', 30_000);
    expect(await limiter.check({ key: 'blocked', cost: 9 })).toMatchObject({
      outcome: 'exceeds-capacity',
      retryAfterMs: Number.POSITIVE_INFINITY,
    });
    expect(await limiter.check({ key: 'blocked', cost: 1 })).toMatchObject({
      outcome: 'blocked',
      retryAfterMs: 30_000,
    });
    await limiter.close();
  });

  it('a blocked key has no quota in its RateLimit fields, as its blocked answers say (r=0 until the block ends)', async () => {
    const limiter = createRateLimiter({
      limits: [burstOf('fixed-window'), { name: 'daily', limit: 100, windowMs: 86_400_000 }],
      clock: new ManualClock(start),
    });
    await limiter.check('blocked');
    await limiter.block('blocked', 30_000);
    const beyond = await limiter.check({ key: 'blocked', cost: 9 });
    const blocked = await limiter.check({ key: 'blocked', cost: 1 });
    expect(blocked.outcome).toBe('blocked');
    expect(rateLimitHeaders(blocked).RateLimit).toBe('"burst";r=0;t=30, "daily";r=0;t=30');
    // The same key state: only Retry-After differs (none: the cost itself can never pass).
    expect(beyond.outcome).toBe('exceeds-capacity');
    expect(rateLimitHeaders(beyond)).toEqual({
      'RateLimit-Policy': '"burst";q=5;w=60, "daily";q=100;w=86400',
      RateLimit: '"burst";r=0;t=30, "daily";r=0;t=30',
    });
    await limiter.close();
  });
});

describe('a remote store that is down', () => {
  /** A remote store whose every call fails (Redis down, as the limiter sees it). */
  const down = (): RateLimitStore => ({
    kind: 'down',
    remote: true,
    consume: () => Promise.reject(new Error('connection refused')),
    reset: async () => {},
    close: async () => {},
  });

  it("a cost within the limits but above this instance's local share waits for the store, it is not never", async () => {
    // 5 instances: this one's share of the burst of 5 is 1 point while the store is down.
    const limiter = createRateLimiter({
      store: down(),
      limits: [burstOf('token-bucket')],
      expectedInstances: 5,
    });
    const result = await limiter.check({ key: 'f', cost: 3 });
    expect(result).toMatchObject({
      allowed: false,
      outcome: 'limited',
      source: 'fallback',
      retryAfterMs: 1_000,
    });
    expect(rateLimitHeaders(result)['Retry-After']).toBe('1');
    expect(rateLimitHeaders(result).RateLimit).toMatch(/^"burst";r=1;t=0$/);
    await limiter.close();
  });

  for (const failMode of ['open', 'closed', 'local'] as const) {
    it(`failMode '${failMode}': a cost above the limits is still never (the answer does not depend on the store)`, async () => {
      const limiter = createRateLimiter({ store: down(), limits: [burstOf('fixed-window')], failMode });
      expect(await limiter.check({ key: 'f', cost: 6 })).toMatchObject({
        allowed: false,
        outcome: 'exceeds-capacity',
        retryAfterMs: Number.POSITIVE_INFINITY,
        source: failMode === 'local' ? 'fallback' : 'fail-mode',
      });
      await limiter.close();
    });
  }
});

describe('consume() and acquire() of a cost above a limit’s capacity', () => {
  it('consume() rejects with CostExceedsCapacityError (not a RateLimitedError to retry)', async () => {
    const limiter = createRateLimiter({
      limits: [burstOf('token-bucket'), { name: 'daily', limit: 3, windowMs: 86_400_000 }],
      clock: new ManualClock(start),
    });
    const error = await limiter.consume({ key: 'c', cost: 4 }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(CostExceedsCapacityError);
    expect(error).not.toBeInstanceOf(RateLimitedError);
    expect(error).toMatchObject({
      code: 'NOA_RATE_LIMIT_COST_EXCEEDS_CAPACITY',
      key: 'c',
      cost: 4,
      limits: ['daily'],
    });
    expect((error as Error).message).not.toMatch(/retry/);
    await limiter.close();
  });

  for (const algorithm of algorithmNames) {
    it(`${algorithm}: acquire() rejects at once with reason 'exceeds-capacity', no retry time`, async () => {
      const limiter = createRateLimiter({ limits: [burstOf(algorithm)], clock: new ManualClock(start) });
      const error = await limiter.acquire({ key: 'w', cost: 6 }).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(AcquireError);
      expect(error).toMatchObject({
        reason: 'exceeds-capacity',
        waitedMs: 0,
        retryAfterMs: Number.POSITIVE_INFINITY,
      });
      expect(limiter.waitingKeys).toBe(0);
      await limiter.close();
    });
  }
});

describe('headers and problem of a cost above a limit’s capacity', () => {
  it('no Retry-After, the RateLimit fields show the real state, a 413 of its own problem type', async () => {
    const limiter = createRateLimiter({
      limits: [burstOf('leaky-bucket'), { name: 'daily', limit: 1_000, windowMs: 86_400_000 }],
      clock: new ManualClock(start),
    });
    await limiter.check({ key: 'h', cost: 2 });
    const result = await limiter.check({ key: 'h', cost: 10 });
    const headers = rateLimitHeaders(result, { legacy: true }, start);
    expect(headers['Retry-After']).toBeUndefined();
    expect(headers.RateLimit).toMatch(/^"burst";r=3;t=\d+, "daily";r=998;t=\d+$/);
    expect(headers['X-RateLimit-Remaining']).toBe('3');
    const problem = quotaProblem(result);
    expect(problem).toEqual({
      type: costExceedsCapacityType,
      title: 'Request cost exceeds what the quota can ever admit',
      status: 413,
      detail:
        'This request costs more than the "burst" limit can ever admit: it will never succeed as it is, whenever it is retried. Reduce its cost.',
      'violated-policies': ['burst'],
    });
    expect(JSON.stringify(problem)).not.toMatch(/retry ?[Aa]fter|retry in/);
    await limiter.close();
  });
});

async function get(base: string, path: string, headers: Record<string, string> = {}) {
  const response = await fetch(base + path, { headers });
  return { status: response.status, headers: response.headers, body: await response.text() };
}

/** What every HTTP answer to a cost above the capacity must carry, whatever the framework. */
function expectNeverAnswer(answer: Awaited<ReturnType<typeof get>>): void {
  expect(answer.status).toBe(413);
  expect(answer.headers.get('retry-after')).toBeNull();
  expect(answer.headers.get('content-type')).toContain('application/problem+json');
  expect(answer.headers.get('ratelimit-policy')).toBe('"burst";q=5;w=60');
  expect(answer.headers.get('ratelimit')).toBe('"burst";r=5;t=0');
  expect(JSON.parse(answer.body)).toMatchObject({
    type: costExceedsCapacityType,
    status: 413,
    'violated-policies': ['burst'],
  });
  expect(JSON.parse(answer.body)).not.toHaveProperty('retryAfter');
}

describe.each(algorithmNames)('middleware over HTTP, %s', (algorithm) => {
  const cost = (facts: { headers: Record<string, string | string[] | undefined> }) =>
    Number(facts.headers['x-cost'] ?? 1);
  let expressBase = '';
  let closeExpress = () => {};
  const fastify = Fastify();
  let fastifyBase = '';
  beforeAll(async () => {
    const clock = new ManualClock(start);
    const app = express();
    app.get(
      '/batch',
      expressRateLimit({ limiter: createRateLimiter({ limits: [burstOf(algorithm)], clock }), cost }),
      (_req, res) => {
        res.send('ok');
      },
    );
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    expressBase = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    closeExpress = () => server.close();
    await fastify.register(fastifyRateLimit, {
      limiter: createRateLimiter({ limits: [burstOf(algorithm)], clock }),
      cost,
    });
    fastify.get('/batch', async () => 'ok');
    await fastify.listen({ port: 0, host: '127.0.0.1' });
    fastifyBase = `http://127.0.0.1:${(fastify.server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    closeExpress();
    await fastify.close();
  });

  for (const framework of ['Express', 'Fastify'] as const) {
    it(`${framework}: 413 without Retry-After on an unused key, and the key's quota is untouched`, async () => {
      const base = framework === 'Express' ? expressBase : fastifyBase;
      expectNeverAnswer(await get(base, '/batch', { 'x-cost': '10' }));
      const fits = await get(base, '/batch', { 'x-cost': '5' });
      expect(fits.status).toBe(200);
      expect(fits.headers.get('ratelimit')).toMatch(/^"burst";r=0;t=\d+$/);
      // Exhausted, an ordinary request gets the ordinary 429 with a real Retry-After.
      const limited = await get(base, '/batch');
      expect(limited.status).toBe(429);
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    });
  }
});

describe('an exceeds-capacity result as JSON', () => {
  it('omits retryAfterMs (as the 413 body omits retryAfter) instead of writing null, which clients read as 0', async () => {
    const limiter = createRateLimiter({
      limits: [burstOf('token-bucket'), { name: 'daily', limit: 1_000, windowMs: 86_400_000 }],
      clock: new ManualClock(start),
    });
    const result = await limiter.check({ key: 'j', cost: 10 });
    expect(result.retryAfterMs).toBe(Number.POSITIVE_INFINITY);
    const text = JSON.stringify(result);
    expect(text).not.toContain('null');
    const parsed = JSON.parse(text);
    expect(parsed).not.toHaveProperty('retryAfterMs');
    expect(parsed).toMatchObject({ allowed: false, outcome: 'exceeds-capacity', remaining: 5 });
    // The limit it is above says "never" by the absence too; the other keeps its finite value.
    expect(parsed.limits[0]).not.toHaveProperty('retryAfterMs');
    expect(parsed.limits[0]).toMatchObject({ name: 'burst', allowed: false });
    expect(parsed.limits[1]).toMatchObject({ name: 'daily', retryAfterMs: 0 });
    expect(JSON.stringify(result.limits[0])).not.toContain('null');
    // The object itself is unchanged for code: Infinity, own keys as before.
    expect(Object.keys(result)).toContain('retryAfterMs');
    await limiter.close();
  });

  it('follows the result as it is when serialized: a retryAfterMs the caller set is written', async () => {
    const limiter = createRateLimiter({ limits: [burstOf('token-bucket')], clock: new ManualClock(start) });
    const result = await limiter.check({ key: 'm', cost: 10 });
    // A caller turning "never" into its own retry time (e.g. a day) must see it in its JSON.
    result.retryAfterMs = 86_400_000;
    result.limits[0]!.retryAfterMs = 86_400_000;
    const parsed = JSON.parse(JSON.stringify(result));
    expect(parsed.retryAfterMs).toBe(86_400_000);
    expect(parsed.limits[0].retryAfterMs).toBe(86_400_000);
    await limiter.close();
  });

  it('an AcquireError of a cost that can never be admitted serializes without retryAfterMs, not null', async () => {
    const limiter = createRateLimiter({ limits: [burstOf('token-bucket')], clock: new ManualClock(start) });
    const error = await limiter.acquire({ key: 'a', cost: 10 }).then(
      () => undefined,
      (rejection: unknown) => rejection,
    );
    expect(error).toBeInstanceOf(AcquireError);
    const acquireError = error as AcquireError;
    // Code still reads "never" as Infinity, on the error and in its details.
    expect(acquireError.retryAfterMs).toBe(Number.POSITIVE_INFINITY);
    const text = JSON.stringify(acquireError);
    expect(text).not.toContain('null');
    const parsed = JSON.parse(text);
    expect(parsed).toMatchObject({ code: 'NOA_RATE_LIMIT_ACQUIRE', reason: 'exceeds-capacity', key: 'a' });
    expect(parsed).not.toHaveProperty('retryAfterMs');
    expect(parsed.details).not.toHaveProperty('retryAfterMs');
    // A finite retry time is written as before.
    expect(JSON.parse(JSON.stringify(new AcquireError('b', 'limited', 0, 500)))).toMatchObject({
      retryAfterMs: 500,
      details: { retryAfterMs: 500 },
    });
    await limiter.close();
  });

  it('a deny-listed refusal has no retryAfter in its problem body (no retry can succeed), not retryAfter 0', async () => {
    const limiter = createRateLimiter({ limits: [burstOf('fixed-window')], deny: ['192.0.2.0/24'] });
    const problem = quotaProblem(await limiter.check({ key: 'd', ip: '192.0.2.7' }));
    expect(problem.status).toBe(403);
    expect(problem).not.toHaveProperty('retryAfter');
    await limiter.close();
  });
});

import type { AddressInfo } from 'node:net';
import { awayFromWindowEdge, isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import express from 'express';
import Fastify from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { expressRateLimit } from '../../src/express.js';
import { fastifyRateLimit } from '../../src/fastify.js';
import { createRateLimiter, type RateLimiter, type RateLimitStore } from '../../src/index.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';

const redisUp = await isReachable('redis');
if (!redisUp) console.log(`skipped: no Redis at ${serviceUrl('redis')} (skip*Requests on Redis)`);

// Fixed windows aligned to the minute (by Redis TIME on this host, or Date.now in memory: one clock):
// a test that expects a refusal from the window its first request opened starts none within 3 s of
// a minute's end.
beforeEach(async () => {
  await awayFromWindowEdge(60_000, 3_000);
});

/** A login endpoint: `?ok=1` succeeds (200), anything else fails (401); `?teapot=1` answers 418. */
const loginStatus = (query: Record<string, unknown>) => (query.teapot ? 418 : query.ok ? 200 : 401);

async function statuses(base: string, paths: string[]): Promise<number[]> {
  const seen: number[] = [];
  // One after the other: each response (and so its refund) comes before the next request.
  for (const path of paths) {
    const response = await fetch(base + path);
    await response.text();
    seen.push(response.status);
  }
  return seen;
}

/** A promise and the function that resolves it. */
function signal(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {};
  const promise = new Promise<void>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

interface Backend {
  name: string;
  skip: boolean;
  store(): Promise<RateLimitStore | undefined>;
}

const clients: Redis[] = [];
const backends: Backend[] = [
  { name: 'memory', skip: false, store: async () => undefined },
  {
    name: 'redis',
    skip: !redisUp,
    async store() {
      const client = new Redis(serviceUrl('redis'), { ...recommendedRedisOptions, lazyConnect: true });
      await client.connect();
      clients.push(client);
      return new RedisStore({ client, prefix: `${uniqueName('rlskip')}:` });
    },
  },
];

afterAll(async () => {
  for (const client of clients) await client.quit();
});

describe.each(backends)('skipSuccessfulRequests / skipFailedRequests over HTTP ($name)', (backend) => {
  const limits = [{ limit: 2, windowMs: 60_000 }];
  let expressBase = '';
  let fastifyBase = '';
  const fastify = Fastify();
  let server: { close(): void } | undefined;
  // The route that never answers: it tells when the request arrived and when its client left.
  let hanging: RateLimiter;
  let arrived = signal();
  let left = signal();

  beforeAll(async () => {
    if (backend.skip) return;
    const store = await backend.store();
    // A generous deadline: on a loaded machine a 25 ms one sends checks to the fallback, which
    // counts apart from Redis (and refunds nothing), and the expected statuses would not hold.
    const make = () => createRateLimiter({ limits, store, prefix: uniqueName('skip'), deadlineMs: 5_000 });
    const app = express();
    app.get(
      '/failed-only',
      expressRateLimit({ limiter: make(), skipSuccessfulRequests: true }),
      (req, res) => {
        res.sendStatus(loginStatus(req.query));
      },
    );
    app.get(
      '/successful-only',
      expressRateLimit({ limiter: make(), skipFailedRequests: true }),
      (req, res) => {
        res.sendStatus(loginStatus(req.query));
      },
    );
    app.get(
      '/custom',
      expressRateLimit({
        limiter: make(),
        skipSuccessfulRequests: true,
        requestWasSuccessful: (_req, res) => res.statusCode !== 418,
      }),
      (req, res) => {
        res.sendStatus(loginStatus(req.query));
      },
    );
    hanging = make();
    app.get(
      '/hang',
      expressRateLimit({ limiter: hanging, keyBy: () => 'hang', skipFailedRequests: true }),
      (_req, res) => {
        res.once('close', () => left.resolve());
        arrived.resolve();
      },
    );
    app.get('/counted', expressRateLimit({ limiter: make() }), (req, res) => {
      res.sendStatus(loginStatus(req.query));
    });
    const listening = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => listening.once('listening', resolve));
    server = listening;
    expressBase = `http://127.0.0.1:${(listening.address() as AddressInfo).port}`;

    await fastify.register(fastifyRateLimit, { limiter: make(), skipSuccessfulRequests: true });
    fastify.get('/failed-only', async (request, reply) =>
      reply.code(loginStatus(request.query as Record<string, unknown>)).send('done'),
    );
    fastify.get(
      '/successful-only',
      { config: { rateLimit: { limiter: make(), skipSuccessfulRequests: false, skipFailedRequests: true } } },
      async (request, reply) =>
        reply.code(loginStatus(request.query as Record<string, unknown>)).send('done'),
    );
    await fastify.listen({ port: 0, host: '127.0.0.1' });
    fastifyBase = `http://127.0.0.1:${(fastify.server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server?.close();
    await fastify.close();
  });

  it.skipIf(backend.skip)('Express skipSuccessfulRequests: only failed logins count', async () => {
    const ok = Array.from({ length: 5 }, () => '/failed-only?ok=1');
    expect(await statuses(expressBase, ok)).toEqual([200, 200, 200, 200, 200]);
    expect(
      await statuses(expressBase, ['/failed-only', '/failed-only', '/failed-only', '/failed-only?ok=1']),
    ).toEqual([401, 401, 429, 429]);
  });

  it.skipIf(backend.skip)('Express skipFailedRequests: only successful requests count', async () => {
    const failed = Array.from({ length: 5 }, () => '/successful-only');
    expect(await statuses(expressBase, failed)).toEqual([401, 401, 401, 401, 401]);
    expect(
      await statuses(expressBase, [
        '/successful-only?ok=1',
        '/successful-only?ok=1',
        '/successful-only?ok=1',
      ]),
    ).toEqual([200, 200, 429]);
  });

  it.skipIf(backend.skip)('Express requestWasSuccessful decides what a success is', async () => {
    // 401 counts as a success here (refunded); only 418 counts.
    expect(await statuses(expressBase, ['/custom', '/custom', '/custom', '/custom?teapot=1'])).toEqual([
      401, 401, 401, 418,
    ]);
    expect(await statuses(expressBase, ['/custom?teapot=1', '/custom'])).toEqual([418, 429]);
  });

  it.skipIf(backend.skip)(
    'Express skipFailedRequests: a client that leaves before the response is refunded',
    async () => {
      for (let round = 0; round < 3; round += 1) {
        arrived = signal();
        left = signal();
        const abort = new AbortController();
        const request = fetch(`${expressBase}/hang`, { signal: abort.signal }).catch(() => 'aborted');
        await arrived.promise;
        expect((await hanging.peek('custom:hang')).remaining).toBe(1);
        abort.abort();
        expect(await request).toBe('aborted');
        // The middleware's close listener ran before the route's (registered first), so the refund is sent.
        await left.promise;
        expect((await hanging.peek('custom:hang')).remaining).toBe(2);
      }
    },
  );

  it.skipIf(backend.skip)('without the options every request counts', async () => {
    expect(await statuses(expressBase, ['/counted?ok=1', '/counted', '/counted?ok=1'])).toEqual([
      200, 401, 429,
    ]);
  });

  it.skipIf(backend.skip)(
    'Fastify skipSuccessfulRequests, and a route overriding it with skipFailedRequests',
    async () => {
      expect(
        await statuses(fastifyBase, ['/failed-only?ok=1', '/failed-only?ok=1', '/failed-only?ok=1']),
      ).toEqual([200, 200, 200]);
      expect(await statuses(fastifyBase, ['/failed-only', '/failed-only', '/failed-only'])).toEqual([
        401, 401, 429,
      ]);
      expect(
        await statuses(fastifyBase, ['/successful-only', '/successful-only', '/successful-only']),
      ).toEqual([401, 401, 401]);
      expect(
        await statuses(fastifyBase, [
          '/successful-only?ok=1',
          '/successful-only?ok=1',
          '/successful-only?ok=1',
        ]),
      ).toEqual([200, 200, 429]);
    },
  );
});

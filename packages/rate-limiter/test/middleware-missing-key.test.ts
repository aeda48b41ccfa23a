import type { AddressInfo } from 'node:net';
import { awayFromWindowEdge } from '@noa/testkit';
import express from 'express';
import Fastify from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { expressRateLimit } from '../src/express.js';
import { fastifyRateLimit } from '../src/fastify.js';
import { createRateLimiter } from '../src/index.js';

// The memory store's fixed windows run on the real clock (Date.now), aligned to the minute: a
// test that expects a 429 from the window its first request opened starts none within 2 s of its end.
beforeEach(async () => {
  await awayFromWindowEdge(60_000, 2_000);
});

// A request whose `keyBy` finds no key (no user, a function returning undefined or '') is keyed by
// its IP: each anonymous client keeps a quota of its own, none shares one with the others.

const limits = [{ limit: 1, windowMs: 60_000 }];
const servers: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const close of servers) await close();
});

async function expressBase(): Promise<string> {
  const app = express();
  app.set('trust proxy', 'loopback');
  app.get(
    '/user',
    expressRateLimit({ limiter: createRateLimiter({ limits }), keyBy: 'user' }),
    (req, res) => {
      res.send(req.rateLimit?.key);
    },
  );
  app.get(
    '/custom',
    expressRateLimit({
      limiter: createRateLimiter({ limits }),
      keyBy: (facts) => facts.headers['x-tenant'] as string,
    }),
    (req, res) => {
      res.send(req.rateLimit?.key);
    },
  );
  app.get(
    '/object',
    expressRateLimit({
      limiter: createRateLimiter({ limits }),
      keyBy: (facts) => ({ id: facts.headers['x-user'] }) as unknown as string,
    }),
    (_req, res) => {
      res.send('ok');
    },
  );
  app.get(
    '/role',
    expressRateLimit({ limiter: createRateLimiter({ limits }), role: () => 1 as unknown as string }),
    (_req, res) => {
      res.send('ok');
    },
  );
  app.use((error: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    res.status(500).send((error as { code?: string }).code);
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  servers.push(() => new Promise((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function fastifyBase(): Promise<string> {
  const app = Fastify({ trustProxy: '127.0.0.1' });
  await app.register(fastifyRateLimit, {
    limiter: createRateLimiter({ limits }),
    keyBy: 'user',
    global: false,
  });
  app.get('/user', { config: { rateLimit: {} } }, async (request) => request.rateLimit?.key);
  app.get(
    '/custom',
    {
      config: {
        rateLimit: {
          limiter: createRateLimiter({ limits }),
          keyBy: (facts) => facts.headers['x-tenant'] as string,
        },
      },
    },
    async (request) => request.rateLimit?.key,
  );
  app.get(
    '/object',
    {
      config: {
        rateLimit: {
          limiter: createRateLimiter({ limits }),
          keyBy: (facts) => ({ id: facts.headers['x-user'] }) as unknown as string,
        },
      },
    },
    async () => 'ok',
  );
  app.get(
    '/role',
    { config: { rateLimit: { limiter: createRateLimiter({ limits }), role: () => 1 as unknown as string } } },
    async () => 'ok',
  );
  app.setErrorHandler(async (error: { code?: string }, _request, reply) => reply.code(500).send(error.code));
  await app.listen({ port: 0, host: '127.0.0.1' });
  servers.push(() => app.close());
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

for (const [name, start] of [
  ['Express', expressBase],
  ['Fastify', fastifyBase],
] as const)
  describe(`${name}: a request without a key is keyed by its IP`, () => {
    it('a keyBy function returning neither a string nor a number fails the request (no shared "[object Object]" quota)', async () => {
      const response = await get('/object', { 'x-forwarded-for': '192.0.2.7', 'x-user': 'ada' });
      expect(response).toEqual([500, 'NOA_RATE_LIMIT_INVALID_INPUT']);
    });

    let base = '';
    beforeAll(async () => {
      base = await start();
    });
    const get = async (path: string, headers: Record<string, string>) => {
      const response = await fetch(base + path, { headers });
      return [response.status, await response.text()] as const;
    };

    it('a role function returning a number fails the request (it matched no role: the default limits)', async () => {
      expect(await get('/role', { 'x-forwarded-for': '192.0.2.8' })).toEqual([
        500,
        'NOA_RATE_LIMIT_INVALID_INPUT',
      ]);
    });

    it("keyBy 'user' without a user: each client IP has its own quota", async () => {
      expect(await get('/user', { 'x-forwarded-for': '192.0.2.1' })).toEqual([200, 'ip:192.0.2.1']);
      expect((await get('/user', { 'x-forwarded-for': '192.0.2.1' }))[0]).toBe(429);
      // Another anonymous client is not refused with the first one.
      expect(await get('/user', { 'x-forwarded-for': '192.0.2.2' })).toEqual([200, 'ip:192.0.2.2']);
    });

    it('a keyBy function returning undefined or an empty string: the IP as well', async () => {
      expect(await get('/custom', { 'x-forwarded-for': '192.0.2.3' })).toEqual([200, 'ip:192.0.2.3']);
      expect(await get('/custom', { 'x-forwarded-for': '192.0.2.4', 'x-tenant': '' })).toEqual([
        200,
        'ip:192.0.2.4',
      ]);
      expect(await get('/custom', { 'x-forwarded-for': '192.0.2.5', 'x-tenant': 'acme' })).toEqual([
        200,
        'custom:acme',
      ]);
      expect((await get('/custom', { 'x-forwarded-for': '192.0.2.6', 'x-tenant': 'acme' }))[0]).toBe(429);
    });
  });

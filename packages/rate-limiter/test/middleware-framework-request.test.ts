import type { AddressInfo } from 'node:net';
import { awayFromWindowEdge } from '@noa/testkit';
import express, { type NextFunction, type Request, type Response } from 'express';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import { afterAll, beforeEach, describe, expect, expectTypeOf, it } from 'vitest';
import { expressRateLimit } from '../src/express.js';
import { fastifyRateLimit } from '../src/fastify.js';
import { createRateLimiter } from '../src/index.js';

// The memory store's fixed windows run on the real clock (Date.now), aligned to the minute: a
// test that expects a 429 from the window its first request opened starts none within 2 s of its end.
beforeEach(async () => {
  await awayFromWindowEdge(60_000, 2_000);
});

// The request functions (keyBy, role, cost, skip) get the framework's own request and response
// beside the facts: what express-jwt puts on `req.auth`, route params, the query, `res.locals`.

const servers: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const close of servers) await close();
});

/** What express-jwt declares: `req.auth` holds the verified token's payload. */
type JwtRequest = Request & { auth?: { sub: string } };

describe('Express: keyBy, role, cost and skip receive the Request and Response', () => {
  it('keys by req.auth, takes the cost from a param, the role from res.locals, skips by the query', async () => {
    const limiter = createRateLimiter({
      limits: [{ limit: 3, windowMs: 60_000 }],
      roles: { pro: [{ limit: 5, windowMs: 60_000 }] },
    });
    const seen: string[] = [];
    const app = express();
    app.use((req: Request, res: Response, next: NextFunction) => {
      (req as JwtRequest).auth = { sub: String(req.headers['x-sub']) };
      res.locals.plan = req.headers['x-plan'];
      next();
    });
    app.get(
      '/items/:cost',
      expressRateLimit({
        limiter,
        keyBy: ({ request }) => {
          expectTypeOf(request).toEqualTypeOf<Request>();
          return (request as JwtRequest).auth?.sub;
        },
        role: ({ response }) => {
          expectTypeOf(response).toEqualTypeOf<Response>();
          return response.locals.plan === 'pro' ? 'pro' : undefined;
        },
        cost: ({ request }) => Number(request.params.cost),
        skip: ({ request, method }) => {
          seen.push(`${method} ${request.originalUrl}`);
          return request.query.free === '1';
        },
      }),
      (req, res) => {
        res.json({ key: req.rateLimit?.key, remaining: req.rateLimit?.remaining });
      },
    );
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    servers.push(() => new Promise((resolve) => server.close(() => resolve())));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const get = async (path: string, headers: Record<string, string>) => {
      const response = await fetch(`${base}${path}`, { headers });
      return [response.status, await response.json()] as const;
    };
    expect(await get('/items/2', { 'x-sub': 'alice' })).toEqual([200, { key: 'custom:alice', remaining: 1 }]);
    expect(await get('/items/1', { 'x-sub': 'bob', 'x-plan': 'pro' })).toEqual([
      200,
      { key: 'custom:bob', remaining: 4 },
    ]);
    expect(await get('/items/2?free=1', { 'x-sub': 'alice' })).toEqual([200, {}]);
    expect((await get('/items/2', { 'x-sub': 'alice' }))[0]).toBe(429);
    expect(seen[0]).toBe('GET /items/2');
  });
});

describe('Fastify: keyBy, role, cost and skip receive the FastifyRequest and FastifyReply', () => {
  it('keys by a decorated request.jwt, takes the cost from a param, skips by the query', async () => {
    const limiter = createRateLimiter({ limits: [{ limit: 3, windowMs: 60_000 }] });
    const app = Fastify();
    app.decorateRequest('jwt', null);
    app.addHook('onRequest', async (request) => {
      (request as FastifyRequest & { jwt: { sub: string } }).jwt = { sub: String(request.headers['x-sub']) };
    });
    await app.register(fastifyRateLimit, {
      limiter,
      keyBy: ({ request, reply }) => {
        expectTypeOf(request).toEqualTypeOf<FastifyRequest>();
        expectTypeOf(reply).toEqualTypeOf<FastifyReply>();
        return (request as FastifyRequest & { jwt: { sub: string } }).jwt.sub;
      },
      cost: ({ request }) => Number((request.params as { cost: string }).cost),
      skip: ({ request }) => (request.query as { free?: string }).free === '1',
    });
    app.get('/items/:cost', async (request) => ({
      key: request.rateLimit?.key,
      remaining: request.rateLimit?.remaining,
    }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    servers.push(() => app.close());
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const get = async (path: string, sub: string) => {
      const response = await fetch(`${base}${path}`, { headers: { 'x-sub': sub } });
      return [response.status, await response.json()] as const;
    };
    expect(await get('/items/2', 'alice')).toEqual([200, { key: 'custom:alice', remaining: 1 }]);
    expect(await get('/items/1', 'bob')).toEqual([200, { key: 'custom:bob', remaining: 2 }]);
    expect(await get('/items/2?free=1', 'alice')).toEqual([200, {}]);
    expect((await get('/items/2', 'alice'))[0]).toBe(429);
  });
});

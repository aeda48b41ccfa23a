import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { expressRateLimit } from '../src/express.js';
import { fastifyRateLimit } from '../src/fastify.js';
import { createRateLimiter, type RequestFacts } from '../src/index.js';

// A cost function reading what the client sends (a header) can return -1, 1.5, NaN or Infinity:
// the request fails as one whose keyBy function returns a bad value does, and the error names
// the option at fault (`field`), so an error handler can answer it.

const limits = [{ limit: 100, windowMs: 60_000 }];
const headerCost = (facts: RequestFacts) => Number(facts.headers['x-cost']);
const badKey = (facts: RequestFacts) => ({ id: facts.headers['x-user'] }) as unknown as string;
const servers: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const close of servers) await close();
});

/** `/cost` (cost from x-cost) and `/key` (a keyBy returning an object), with or without a handler. */
async function expressBase(withHandler: boolean): Promise<string> {
  const app = express();
  app.get(
    '/cost',
    expressRateLimit({ limiter: createRateLimiter({ limits }), cost: headerCost }),
    (_req, res) => {
      res.send('ok');
    },
  );
  app.get(
    '/key',
    expressRateLimit({ limiter: createRateLimiter({ limits }), keyBy: badKey }),
    (_req, res) => {
      res.send('ok');
    },
  );
  if (withHandler)
    app.use((error: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      const { code, field } = error as { code?: string; field?: string };
      res.status(400).json({ code, field });
    });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  servers.push(() => new Promise((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function fastifyBase(withHandler: boolean): Promise<string> {
  const app = Fastify();
  // Before the scopes: each takes the error handler its parent has when it is registered.
  if (withHandler)
    app.setErrorHandler(async (error: { code?: string; field?: string }, _request, reply) =>
      reply.code(400).send({ code: error.code, field: error.field }),
    );
  await app.register(async (scope) => {
    await scope.register(fastifyRateLimit, { limiter: createRateLimiter({ limits }), cost: headerCost });
    scope.get('/cost', async () => 'ok');
  });
  await app.register(async (scope) => {
    await scope.register(fastifyRateLimit, { limiter: createRateLimiter({ limits }), keyBy: badKey });
    scope.get('/key', async () => 'ok');
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  servers.push(() => app.close());
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

describe.each([
  { name: 'Express', start: expressBase },
  { name: 'Fastify', start: fastifyBase },
])('$name: a cost function returning a bad value', ({ start }) => {
  const get = async (base: string, path: string, cost = '1') => {
    const response = await fetch(`${base}${path}`, { headers: { 'x-cost': cost, 'x-user': 'u' } });
    return {
      status: response.status,
      type: response.headers.get('content-type')?.split(';')[0],
      body: await response.text(),
    };
  };

  it.each(['-1', '1.5', 'abc', '1e400'])(
    '%s: the error names field cost, as a bad keyBy names keyBy',
    async (cost) => {
      const base = await start(true);
      expect(await get(base, '/cost', cost)).toEqual({
        status: 400,
        type: 'application/json',
        body: JSON.stringify({ code: 'NOA_RATE_LIMIT_INVALID_COST', field: 'cost' }),
      });
      expect(await get(base, '/key')).toEqual({
        status: 400,
        type: 'application/json',
        body: JSON.stringify({ code: 'NOA_RATE_LIMIT_INVALID_INPUT', field: 'keyBy' }),
      });
      expect((await get(base, '/cost', '2')).status).toBe(200);
    },
  );

  it('without an error handler, the same response as for a bad keyBy', async () => {
    const base = await start(false);
    const cost = await get(base, '/cost', '-1');
    const key = await get(base, '/key');
    expect(cost.status).toBe(500);
    expect([cost.status, cost.type]).toEqual([key.status, key.type]);
  });
});

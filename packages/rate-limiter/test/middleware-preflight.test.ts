import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { expressRateLimit } from '../src/express.js';
import { fastifyRateLimit } from '../src/fastify.js';
import { createRateLimiter, type RequestFacts } from '../src/index.js';

// Browsers send a CORS preflight (OPTIONS with Access-Control-Request-Method) before a
// cross-origin call that is not "simple": counted like any request, it halves a browser client's
// quota (encode/django-rest-framework#4362, GIScience/openrouteservice#164). The middleware counts
// it by default, as express-rate-limit and @fastify/rate-limit do; docs/middleware.md's `skip`
// exempts preflights only: a bare OPTIONS, which no browser sends as a preflight, still counts.
const isPreflight = ({ method, headers }: RequestFacts) =>
  method === 'OPTIONS' && headers['access-control-request-method'] !== undefined;

const preflight = {
  method: 'OPTIONS',
  headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' },
};

/** Statuses of a browser's preflight + POST, twice, then of a bare OPTIONS and a POST. */
async function session(base: string): Promise<string> {
  const statuses: number[] = [];
  for (let call = 0; call < 2; call += 1) {
    statuses.push((await fetch(`${base}/api`, preflight)).status);
    statuses.push((await fetch(`${base}/api`, { method: 'POST' })).status);
  }
  statuses.push((await fetch(`${base}/api`, { method: 'OPTIONS' })).status);
  statuses.push((await fetch(`${base}/api`, { method: 'POST' })).status);
  return statuses.join(' ');
}

async function expressBase(skip?: (facts: RequestFacts) => boolean) {
  const limiter = createRateLimiter({ limits: [{ limit: 3, windowMs: 60_000 }] });
  const app = express();
  app.use(expressRateLimit({ limiter, ...(skip === undefined ? {} : { skip }) }));
  app.options('/api', (_req, res) => {
    res.sendStatus(204);
  });
  app.post('/api', (_req, res) => {
    res.sendStatus(200);
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      await new Promise((resolve) => server.close(resolve));
      await limiter.close();
    },
  };
}

async function fastifyBase(skip?: (facts: RequestFacts) => boolean) {
  const limiter = createRateLimiter({ limits: [{ limit: 3, windowMs: 60_000 }] });
  const app = Fastify();
  await app.register(fastifyRateLimit, { limiter, ...(skip === undefined ? {} : { skip }) });
  app.options('/api', async (_request, reply) => reply.code(204).send());
  app.post('/api', async () => 'ok');
  await app.listen({ port: 0, host: '127.0.0.1' });
  return {
    base: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`,
    close: async () => {
      await app.close();
      await limiter.close();
    },
  };
}

describe.each([
  ['Express', expressBase],
  ['Fastify', fastifyBase],
])('CORS preflights under %s', (_framework, start) => {
  it('count against the limit by default', async () => {
    const app = await start();
    expect(await session(app.base)).toBe('204 200 204 429 429 429');
    await app.close();
  });

  it('are exempt with skip: isPreflight, a bare OPTIONS still counting', async () => {
    const app = await start(isPreflight);
    // Limit 3: two POSTs and the bare OPTIONS.
    expect(await session(app.base)).toBe('204 200 204 200 204 429');
    await app.close();
  });
});

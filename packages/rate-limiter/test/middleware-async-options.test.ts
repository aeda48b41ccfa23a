import type { AddressInfo } from 'node:net';
import { ManualClock } from '@noa/core';
import express from 'express';
import fc from 'fast-check';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expressRateLimit } from '../src/express.js';
import { fastifyRateLimit } from '../src/fastify.js';
import { createRateLimiter, type RequestFacts } from '../src/index.js';
import { checkInputOf, middlewareOptionsSchema } from '../src/middleware/options.js';

const start = 1_700_000_000_000;

// A key looked up elsewhere (a session store, a tenant table): express-rate-limit's keyGenerator and
// @fastify/rate-limit's may be async, so ours are written that way too.
const tenantOf = async (facts: RequestFacts) => {
  await new Promise((resolve) => setImmediate(resolve));
  const tenant = facts.headers['x-tenant'];
  if (tenant === 'broken') throw new Error('tenant lookup failed');
  return typeof tenant === 'string' ? `tenant:${tenant}` : undefined;
};
const roleOf = async (facts: RequestFacts) => (facts.headers['x-role'] === 'admin' ? 'admin' : undefined);
const costOf = async (facts: RequestFacts) => (facts.headers['x-cost'] === '2' ? 2 : 1);

const limiterOf = () =>
  createRateLimiter({
    limits: [{ limit: 2, windowMs: 60_000 }],
    roles: { admin: 'unlimited' },
    clock: new ManualClock(start),
  });

async function statusesOf(base: string, headers: Record<string, string>, count: number) {
  const seen: number[] = [];
  for (let index = 0; index < count; index += 1) {
    const response = await fetch(`${base}/r`, { headers });
    await response.text();
    seen.push(response.status);
  }
  return seen;
}

const frameworks: { name: string; serve(): Promise<{ base: string; close(): Promise<void> }> }[] = [
  {
    name: 'Express',
    async serve() {
      const app = express();
      app.get(
        '/r',
        expressRateLimit({ limiter: limiterOf(), keyBy: tenantOf, role: roleOf, cost: costOf }),
        (_req, res) => {
          res.send('ok');
        },
      );
      // Express 5's default error handler answers 500.
      const server = app.listen(0, '127.0.0.1');
      await new Promise((resolve) => server.once('listening', resolve));
      return {
        base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        close: () => new Promise<void>((resolve) => server.close(() => resolve())),
      };
    },
  },
  {
    name: 'Fastify',
    async serve() {
      const app: FastifyInstance = Fastify();
      await app.register(fastifyRateLimit, {
        limiter: limiterOf(),
        keyBy: tenantOf,
        role: roleOf,
        cost: costOf,
      });
      app.get('/r', async () => 'ok');
      await app.listen({ port: 0, host: '127.0.0.1' });
      return {
        base: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`,
        close: () => app.close(),
      };
    },
  },
];

describe.each(frameworks)('$name middleware with async keyBy, role and cost', (framework) => {
  let base = '';
  let close = async () => {};
  beforeAll(async () => {
    ({ base, close } = await framework.serve());
  });
  afterAll(() => close());

  it('keys each request by the key the promise resolves to (not one fresh key per promise)', async () => {
    expect(await statusesOf(base, { 'x-tenant': 'acme' }, 3)).toEqual([200, 200, 429]);
    expect(await statusesOf(base, { 'x-tenant': 'globex' }, 1)).toEqual([200]);
  });

  it('falls back to the IP when the promise resolves to undefined', async () => {
    expect(await statusesOf(base, {}, 3)).toEqual([200, 200, 429]);
  });

  it('applies the role and the cost the promises resolve to', async () => {
    expect(await statusesOf(base, { 'x-tenant': 'initech', 'x-role': 'admin' }, 4)).toEqual([
      200, 200, 200, 200,
    ]);
    expect(await statusesOf(base, { 'x-tenant': 'hooli', 'x-cost': '2' }, 2)).toEqual([200, 429]);
  });

  it('answers 500 when the key lookup rejects (an error, never an unhandled rejection or a pass)', async () => {
    expect(await statusesOf(base, { 'x-tenant': 'broken' }, 2)).toEqual([500, 500]);
  });
});

describe('checkInputOf with async request functions', () => {
  const limiter = limiterOf();
  it('resolves to exactly what the same functions give synchronously', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.option(fc.string(), { nil: undefined }),
        fc.option(fc.constantFrom('admin', 'pro'), { nil: undefined }),
        fc.nat(5),
        fc.ipV4(),
        fc.boolean(),
        async (key, role, cost, ip, perEndpoint) => {
          const facts: RequestFacts = { ip, method: 'GET', route: '/r', headers: {}, user: undefined };
          const syncInput = checkInputOf(
            facts,
            middlewareOptionsSchema.parse({
              limiter,
              perEndpoint,
              keyBy: () => key,
              role: () => role,
              cost: () => cost,
            }),
          );
          const asyncInput = checkInputOf(
            facts,
            middlewareOptionsSchema.parse({
              limiter,
              perEndpoint,
              keyBy: async () => key,
              role: async () => role,
              cost: async () => cost,
            }),
          );
          expect(syncInput).not.toBeInstanceOf(Promise);
          expect(asyncInput).toBeInstanceOf(Promise);
          expect(await asyncInput).toEqual(syncInput);
        },
      ),
    );
  });
});

import type { AddressInfo } from 'node:net';
import { ManualClock } from '@noa/core';
import express from 'express';
import Fastify from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { expressRateLimit } from '../src/express.js';
import { fastifyRateLimit } from '../src/fastify.js';
import { createRateLimiter } from '../src/index.js';

// The legacy X-RateLimit-Reset is an epoch in seconds: it must come from the limiter's clock (the
// one its windows run on), not from Date.now(), or an injected clock gives a reset years away.

const start = 1_700_000_040_000; // a minute boundary: the fixed window starts here
const windowMs = 60_000;
const closers: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const close of closers) await close();
});

async function expressBase(clock: ManualClock): Promise<string> {
  const app = express();
  const limiter = createRateLimiter({ limits: [{ limit: 5, windowMs }], clock });
  app.use(expressRateLimit({ limiter, headers: { legacy: true } }));
  app.get('/', (_req, res) => {
    res.send('ok');
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  closers.push(() => new Promise((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function fastifyBase(clock: ManualClock): Promise<string> {
  const app = Fastify();
  const limiter = createRateLimiter({ limits: [{ limit: 5, windowMs }], clock });
  await app.register(fastifyRateLimit, { limiter, headers: { legacy: true } });
  app.get('/', async () => 'ok');
  await app.listen({ port: 0, host: '127.0.0.1' });
  closers.push(() => app.close());
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

for (const [name, serve] of [
  ['Express', expressBase],
  ['Fastify', fastifyBase],
] as const)
  describe(`${name}: X-RateLimit-Reset`, () => {
    it("is the limiter's clock plus resetMs, in epoch seconds", async () => {
      const clock = new ManualClock(start);
      const base = await serve(clock);
      const first = await fetch(base);
      expect(first.status).toBe(200);
      // The fixed window started at `start`: it ends windowMs later on the limiter's clock.
      expect(Number(first.headers.get('x-ratelimit-reset'))).toBe(Math.ceil((start + windowMs) / 1_000));
      clock.advance(10_000);
      const later = await fetch(base);
      expect(Number(later.headers.get('x-ratelimit-reset'))).toBe(Math.ceil((start + windowMs) / 1_000));
    });
  });

import type { AddressInfo } from 'node:net';
import { ManualClock } from '@noa/core';
import express from 'express';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { expressRateLimit } from '../src/express.js';
import { fastifyRateLimit } from '../src/fastify.js';
import { createRateLimiter } from '../src/index.js';

// Two limiters stacked on one route: a request the second refuses has been counted by the first
// (as with express-rate-limit). docs/middleware.md ("Stacked limiters") gives two remedies; both
// are pinned here, and the plain stack's double count too, so the guide's claim stays true.

const clock = new ManualClock(1_700_000_000_000);
const closers: (() => unknown)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

const outer = (skip: boolean) => ({
  limiter: createRateLimiter({ prefix: 'outer', limits: [{ limit: 10, windowMs: 60_000 }], clock }),
  ...(skip
    ? {
        skipFailedRequests: true,
        // Only the inner limiter's refusals are given back: the route's own 4xx/5xx still count.
        requestWasSuccessful: (_req: unknown, res: { statusCode: number }) => res.statusCode !== 429,
      }
    : {}),
});
const innerLimiter = () =>
  createRateLimiter({ prefix: 'inner', limits: [{ limit: 1, windowMs: 60_000 }], clock });

/** Waits until `read()` gives `want` (a refund lands as the response finishes, after the client read it). */
async function eventually<T>(read: () => Promise<T>, want: T): Promise<T> {
  for (let tries = 0; tries < 200; tries += 1) {
    const got = await read();
    if (got === want) return got;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return read();
}

describe('stacked limiters (Express)', () => {
  async function serve(skip: boolean) {
    const first = outer(skip);
    const inner = innerLimiter();
    const app = express();
    app.get('/r', expressRateLimit(first), expressRateLimit({ limiter: inner }), (_req, res) => {
      res.send('ok');
    });
    const server = app.listen(0);
    await new Promise((resolve) => server.once('listening', resolve));
    closers.push(
      () => new Promise((resolve) => server.close(resolve)),
      () => first.limiter.close(),
      () => inner.close(),
    );
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const statuses: number[] = [];
    for (let index = 0; index < 3; index += 1) statuses.push((await fetch(`${base}/r`)).status);
    return {
      statuses,
      remaining: () => first.limiter.peek('ip:127.0.0.1').then((result) => result.remaining),
    };
  }

  it('a plain stack counts the inner refusals in the outer limiter too', async () => {
    const { statuses, remaining } = await serve(false);
    expect(statuses).toEqual([200, 429, 429]);
    expect(await remaining()).toBe(7);
  });

  it('skipFailedRequests with requestWasSuccessful = status !== 429 gives them back', async () => {
    const { statuses, remaining } = await serve(true);
    expect(statuses).toEqual([200, 429, 429]);
    expect(await eventually(remaining, 9)).toBe(9);
  });
});

describe('stacked limiters (Fastify)', () => {
  it('skipFailedRequests with requestWasSuccessful = status !== 429 gives them back', async () => {
    const first = createRateLimiter({ prefix: 'outer', limits: [{ limit: 10, windowMs: 60_000 }], clock });
    const inner = innerLimiter();
    const app = Fastify();
    await app.register(async (scope) => {
      await scope.register(fastifyRateLimit, {
        limiter: first,
        skipFailedRequests: true,
        requestWasSuccessful: (_request, reply) => reply.statusCode !== 429,
      });
      await scope.register(async (innerScope) => {
        await innerScope.register(fastifyRateLimit, { limiter: inner });
        innerScope.get('/r', async () => 'ok');
      });
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    closers.push(
      () => app.close(),
      () => first.close(),
      () => inner.close(),
    );
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const statuses: number[] = [];
    for (let index = 0; index < 3; index += 1) statuses.push((await fetch(`${base}/r`)).status);
    expect(statuses).toEqual([200, 429, 429]);
    const remaining = () => first.peek('ip:127.0.0.1').then((result) => result.remaining);
    expect(await eventually(remaining, 9)).toBe(9);
  });
});

describe('one limiter with several limits', () => {
  it('counts a refused request in none of them (atomic)', async () => {
    const limiter = createRateLimiter({
      limits: [
        { limit: 1, windowMs: 60_000 },
        { limit: 10, windowMs: 3_600_000 },
      ],
      clock,
    });
    closers.push(() => limiter.close());
    const allowed = [];
    for (let index = 0; index < 3; index += 1) allowed.push((await limiter.check('k')).allowed);
    expect(allowed).toEqual([true, false, false]);
    const peeked = await limiter.peek('k');
    expect(peeked.limits.map((limit) => limit.remaining)).toEqual([0, 9]);
  });
});

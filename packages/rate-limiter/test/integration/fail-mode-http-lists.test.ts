import type { AddressInfo } from 'node:net';
import { ManualClock } from '@noa/core';
import { startPrivateRedisOrSkip } from '@noa/testkit';
import express from 'express';
import Fastify from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expressRateLimit } from '../../src/express.js';
import { fastifyRateLimit } from '../../src/fastify.js';
import { createRateLimiter, type RateLimiter, type RateLimiterOptions } from '../../src/index.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';

// failMode 'closed' answers an outage with 503, but only for what the store had to decide: a
// deny-listed client is refused by the lists (403), a key the local block cache remembers is
// still blocked (429), also past its once-a-second recheck (which the store cannot answer) and under
// 'open' too; an unlimited role is let through; a role with several limits gets one 503.

const { redis, skip } = await startPrivateRedisOrSkip();
const clients: Redis[] = [];
const limiters: RateLimiter[] = [];

function closedLimiter(options: Partial<RateLimiterOptions>): RateLimiter {
  const client = new Redis(redis!.url, { ...recommendedRedisOptions, retryStrategy: () => 100 });
  client.on('error', () => {});
  clients.push(client);
  const limiter = createRateLimiter({
    store: new RedisStore({ client }),
    limits: [{ limit: 100, windowMs: 60_000 }],
    prefix: `failhttp-lists-${limiters.length}`,
    failMode: 'closed',
    deadlineMs: 1_000,
    // Generous: a healthy call on a loaded machine must not reach the fail mode.
    ...options,
  });
  limiters.push(limiter);
  return limiter;
}

const rateLimitFields = ['ratelimit', 'ratelimit-policy', 'x-ratelimit-limit'];

describe.skipIf(skip !== undefined)("failMode 'closed' over HTTP with lists, blocks and roles", () => {
  const bases: [string, string][] = [];
  const fastify = Fastify();
  let expressServer: { close(): void } | undefined;
  let blocking: RateLimiter[] = [];
  // The blocking limiters' clock: moved past the local block cache's recheck without a sleep.
  const clock = new ManualClock(Date.now());

  beforeAll(async () => {
    const denying = () => closedLimiter({ deny: ['127.0.0.0/8', '::1/128'] });
    const roles = () =>
      closedLimiter({
        roles: {
          gold: [
            { name: 'burst', limit: 10, windowMs: 1_000 },
            { name: 'daily', algorithm: 'token-bucket', limit: 1_000, windowMs: 86_400_000 },
          ],
          root: 'unlimited',
        },
      });
    const blocked = [
      closedLimiter({ clock }),
      closedLimiter({ clock }),
      closedLimiter({ clock, failMode: 'open' }),
      closedLimiter({ clock, failMode: 'open' }),
    ];
    blocking = blocked;
    const app = express();
    const gold = roles();
    app.get('/denied', expressRateLimit({ limiter: denying() }), (_req, res) => void res.send('ok'));
    app.get('/blocked', expressRateLimit({ limiter: blocked[0]! }), (_req, res) => void res.send('ok'));
    app.get('/blocked-open', expressRateLimit({ limiter: blocked[2]! }), (_req, res) => void res.send('ok'));
    app.get(
      '/gold',
      expressRateLimit({ limiter: gold, role: () => 'gold', headers: { standard: true, legacy: true } }),
      (_req, res) => void res.send('ok'),
    );
    app.get(
      '/root',
      expressRateLimit({ limiter: gold, role: async () => 'root' }),
      (_req, res) => void res.send('ok'),
    );
    const listening = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => listening.once('listening', resolve));
    expressServer = listening;
    bases.push(['express', `http://127.0.0.1:${(listening.address() as AddressInfo).port}`]);

    const fastifyGold = roles();
    fastify.get('/denied', { config: { rateLimit: { limiter: denying() } } }, async () => 'ok');
    fastify.get('/blocked', { config: { rateLimit: { limiter: blocked[1]! } } }, async () => 'ok');
    fastify.get('/blocked-open', { config: { rateLimit: { limiter: blocked[3]! } } }, async () => 'ok');
    fastify.get(
      '/gold',
      {
        config: {
          rateLimit: { limiter: fastifyGold, role: () => 'gold', headers: { standard: true, legacy: true } },
        },
      },
      async () => 'ok',
    );
    fastify.get(
      '/root',
      { config: { rateLimit: { limiter: fastifyGold, role: async () => 'root' } } },
      async () => 'ok',
    );
    await fastify.register(fastifyRateLimit, { limiter: denying(), global: false });
    await fastify.listen({ port: 0, host: '127.0.0.1' });
    bases.push(['fastify', `http://127.0.0.1:${(fastify.server.address() as AddressInfo).port}`]);
  });

  afterAll(async () => {
    expressServer?.close();
    await fastify.close();
    for (const limiter of limiters) await limiter.close();
    for (const client of clients) client.disconnect();
    await redis?.stop();
  });

  it('while the store is stopped: deny-listed 403, blocked 429, several limits one 503, unlimited 200', async () => {
    // Blocked while the store was up: the local block cache remembers it.
    for (const limiter of blocking) await limiter.block('ip:127.0.0.1', 60_000);
    await redis!.stop();
    for (const [name, base] of bases) {
      const denied = await fetch(`${base}/denied`);
      expect(denied.status, `${name} denied`).toBe(403);
      expect(await denied.json(), `${name} denied`).toMatchObject({ status: 403, title: 'Forbidden' });
      expect(denied.headers.has('retry-after'), `${name} denied`).toBe(false);

      // Past the block cache's recheck (1 s), which the stopped store cannot answer: the block
      // it knows holds for its minute, in either fail mode, on every request.
      clock.advance(1_500);
      for (const path of ['/blocked', '/blocked', '/blocked-open', '/blocked-open']) {
        const blocked = await fetch(base + path);
        expect(blocked.status, `${name} ${path}`).toBe(429);
        expect(Number(blocked.headers.get('retry-after')), `${name} ${path}`).toBeGreaterThan(50);
        expect(await blocked.json(), `${name} ${path}`).toMatchObject({
          status: 429,
          detail: expect.stringMatching(/blocked/),
        });
      }

      const gold = await fetch(`${base}/gold`);
      expect(gold.status, `${name} gold`).toBe(503);
      expect(gold.headers.get('retry-after'), `${name} gold`).toBe('1');
      expect(
        rateLimitFields.filter((field) => gold.headers.has(field)),
        `${name} gold`,
      ).toEqual([]);
      expect(await gold.json(), `${name} gold`).toMatchObject({
        status: 503,
        retryAfter: 1,
        'violated-policies': [],
      });

      const root = await fetch(`${base}/root`);
      expect(root.status, `${name} root`).toBe(200);
    }
  });
});

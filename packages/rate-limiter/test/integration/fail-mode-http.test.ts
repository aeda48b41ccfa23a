import type { AddressInfo } from 'node:net';
import { awayFromWindowEdge, startPrivateRedisOrSkip } from '@noa/testkit';
import express from 'express';
import Fastify from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { expressRateLimit } from '../../src/express.js';
import { fastifyRateLimit } from '../../src/fastify.js';
import { createRateLimiter, type FailMode, type RateLimiter } from '../../src/index.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';

// What an HTTP client sees while the limiter's Redis is really gone (a private server, stopped):
// 'closed' is an outage (503), not a quota (429); 'open' and 'closed' state no made-up quota in
// the headers; 'local' answers from a real local limiter, so its 429 and headers stay.

const { redis, skip } = await startPrivateRedisOrSkip();
// Fixed windows aligned to the minute (by Redis TIME on this host, or Date.now in memory: one clock):
// a test that expects a refusal or a count from the window its first call opened starts none
// within 5 s of a minute's end (an hour's or a day's end is one too).
beforeEach(async () => {
  await awayFromWindowEdge(60_000, 5_000);
});
const failModes = ['local', 'open', 'closed'] as const;
const rateLimitFields = [
  'ratelimit',
  'ratelimit-policy',
  'x-ratelimit-limit',
  'x-ratelimit-remaining',
  'x-ratelimit-reset',
];

const clients: Redis[] = [];
const limiters: RateLimiter[] = [];

/** A limiter on the private Redis: 8 a minute, so 2 per key for each of 4 instances in 'local'. */
function limiterOn(failMode: FailMode): RateLimiter {
  const client = new Redis(redis!.url, { ...recommendedRedisOptions, retryStrategy: () => 100 });
  client.on('error', () => {});
  clients.push(client);
  const limiter = createRateLimiter({
    store: new RedisStore({ client }),
    limits: [{ limit: 8, windowMs: 60_000 }],
    prefix: `failhttp-${failMode}-${limiters.length}`,
    failMode,
    expectedInstances: 4,
    // Generous: a healthy check on a loaded machine must not reach the fail mode. A stopped
    // server refuses connections, so the checks of the outage fail at once anyway.
    deadlineMs: 1_000,
    breaker: { halfOpenAfterMs: 300, consecutiveFailures: 3 },
  });
  limiters.push(limiter);
  return limiter;
}

interface Seen {
  status: number;
  headers: Headers;
  body: string;
}

async function get(url: string): Promise<Seen> {
  const response = await fetch(url);
  return { status: response.status, headers: response.headers, body: await response.text() };
}

/** The rate-limit fields a response carries (lower-cased names). */
const fieldsOf = (seen: Seen): string[] => rateLimitFields.filter((name) => seen.headers.has(name));

const frameworks: { name: string; base: string }[] = [
  { name: 'express', base: '' },
  { name: 'fastify', base: '' },
];

describe.skipIf(skip !== undefined)('fail modes over HTTP while Redis is stopped', () => {
  const fastify = Fastify();
  let expressServer: { close(): void } | undefined;

  beforeAll(async () => {
    const app = express();
    for (const mode of failModes)
      app.get(
        `/${mode}`,
        expressRateLimit({ limiter: limiterOn(mode), headers: { standard: true, legacy: true } }),
        (_req, res) => {
          res.send('ok');
        },
      );
    const listening = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => listening.once('listening', resolve));
    expressServer = listening;
    frameworks[0]!.base = `http://127.0.0.1:${(listening.address() as AddressInfo).port}`;

    await fastify.register(fastifyRateLimit, {
      limiter: limiterOn('local'),
      headers: { standard: true, legacy: true },
    });
    for (const mode of failModes)
      fastify.get(`/${mode}`, { config: { rateLimit: { limiter: limiterOn(mode) } } }, async () => 'ok');
    await fastify.listen({ port: 0, host: '127.0.0.1' });
    frameworks[1]!.base = `http://127.0.0.1:${(fastify.server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    expressServer?.close();
    await fastify.close();
    for (const limiter of limiters) await limiter.close();
    for (const client of clients) client.disconnect();
    await redis?.stop();
  });

  it("healthy: every mode answers 200 with the store's RateLimit fields", async () => {
    for (const { name, base } of frameworks)
      for (const mode of failModes) {
        const seen = await get(`${base}/${mode}`);
        expect(seen.status, `${name} ${mode}`).toBe(200);
        expect(seen.headers.get('ratelimit-policy'), `${name} ${mode}`).toBe('"default";q=8;w=60');
        expect(seen.headers.get('ratelimit'), `${name} ${mode}`).toMatch(/^"default";r=7;t=\d+$/);
        expect(seen.headers.get('x-ratelimit-limit'), `${name} ${mode}`).toBe('8');
      }
  });

  it("stopped: 'closed' answers 503 Service Unavailable, 'open' 200 without made-up quota fields, 'local' its own 429", async () => {
    await redis!.stop();
    for (const { name, base } of frameworks) {
      // Past the breaker's opening (3 failures) too: the answers are the same on either side.
      for (let attempt = 0; attempt < 4; attempt += 1) {
        const closed = await get(`${base}/closed`);
        expect(closed.status, `${name} closed`).toBe(503);
        expect(closed.headers.get('content-type'), `${name} closed`).toMatch(/^application\/problem\+json/);
        expect(closed.headers.get('retry-after'), `${name} closed`).toBe('1');
        expect(fieldsOf(closed), `${name} closed`).toEqual([]);
        expect(JSON.parse(closed.body), `${name} closed`).toEqual({
          type: 'about:blank',
          title: 'Service Unavailable',
          status: 503,
          detail: expect.stringMatching(/rate limiter cannot reach its store/),
          retryAfter: 1,
          'violated-policies': [],
        });

        const open = await get(`${base}/open`);
        expect(open.status, `${name} open`).toBe(200);
        expect(open.body, `${name} open`).toBe('ok');
        expect(fieldsOf(open), `${name} open`).toEqual([]);
        expect(open.headers.has('retry-after'), `${name} open`).toBe(false);
      }

      // 'local': this instance's share (8 ÷ 4 = 2), counted by a real limiter, so its headers
      // and its 429 say what it counted.
      const local = [await get(`${base}/local`), await get(`${base}/local`), await get(`${base}/local`)];
      expect(
        local.map((seen) => seen.status),
        `${name} local`,
      ).toEqual([200, 200, 429]);
      expect(
        local.map((seen) => seen.headers.get('ratelimit-policy')),
        `${name} local`,
      ).toEqual(['"default";q=2;w=60', '"default";q=2;w=60', '"default";q=2;w=60']);
      expect(local[1]!.headers.get('ratelimit'), `${name} local`).toMatch(/^"default";r=0;t=\d+$/);
      expect(local[2]!.headers.get('x-ratelimit-remaining'), `${name} local`).toBe('0');
      expect(Number(local[2]!.headers.get('retry-after')), `${name} local`).toBeGreaterThan(0);
      expect(JSON.parse(local[2]!.body), `${name} local`).toMatchObject({
        status: 429,
        type: 'https://iana.org/assignments/http-problem-types#quota-exceeded',
        'violated-policies': ['default'],
      });
    }
  });

  it("back: once Redis answers again, 'closed' admits with the store's fields (no refusal was remembered)", async () => {
    await redis!.restart();
    for (const { name, base } of frameworks) {
      let seen: Seen | undefined;
      const until = Date.now() + 15_000;
      while (Date.now() < until) {
        seen = await get(`${base}/closed`);
        if (seen.status === 200) break;
        expect(seen.status, `${name} closed while reconnecting`).toBe(503);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(seen?.status, `${name} closed`).toBe(200);
      // A fresh server: the first count of the key.
      expect(seen?.headers.get('ratelimit'), `${name} closed`).toMatch(/^"default";r=7;t=\d+$/);
    }
  });
});

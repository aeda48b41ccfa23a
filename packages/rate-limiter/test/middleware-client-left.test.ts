import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { ManualClock } from '@noa/core';
import express from 'express';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { expressRateLimit } from '../src/express.js';
import { fastifyRateLimit } from '../src/fastify.js';
import { createRateLimiter, type RateLimiter } from '../src/index.js';

// skipFailedRequests counts only successes; a client that leaves before its response is whole (a
// streamed export, a long poll it gave up on) did not get one, so its request is refunded. Fastify
// runs onResponse only on 'finish' and onRequestAbort only while the request is incomplete, so a
// client leaving a streamed response could fall between them. Pinned for both frameworks: a
// stream whose headers and first chunk went out, and (Fastify) a handler that never answers.
// (middleware-http-edges.test.ts covers a client that leaves during the check,
// integration/middleware-skip.test.ts an Express client that leaves a hanging route.)

const start = 1_700_000_000_000;

interface Served {
  base: string;
  /** Resolves when the response's socket closed (the client left). */
  gone: Promise<void>;
  close: () => Promise<void>;
}

async function expressApp(limiter: RateLimiter): Promise<Served> {
  let closed!: () => void;
  const gone = new Promise<void>((resolve) => {
    closed = resolve;
  });
  const app = express();
  app.get('/', expressRateLimit({ limiter, keyBy: () => 'k', skipFailedRequests: true }), (_req, res) => {
    res.once('close', closed);
    res.write('first chunk\n');
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    gone,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

async function fastifyApp(limiter: RateLimiter, stream: boolean): Promise<Served> {
  let closed!: () => void;
  const gone = new Promise<void>((resolve) => {
    closed = resolve;
  });
  const app = Fastify();
  await app.register(fastifyRateLimit, { limiter, keyBy: () => 'k', skipFailedRequests: true });
  app.get('/', async (_request, reply) => {
    reply.raw.once('close', closed);
    if (!stream) return new Promise(() => {});
    const body = new PassThrough();
    body.write('first chunk\n');
    return reply.send(body);
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  return {
    base: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`,
    gone,
    close: async () => {
      app.server.closeAllConnections();
      await app.close();
    },
  };
}

describe('skipFailedRequests and a client that leaves before its response is whole', () => {
  it.each([
    { name: 'Express, a streamed response', serve: expressApp, stream: true },
    {
      name: 'Fastify, a streamed response',
      serve: (limiter: RateLimiter) => fastifyApp(limiter, true),
      stream: true,
    },
    {
      name: 'Fastify, a handler that never answers',
      serve: (limiter: RateLimiter) => fastifyApp(limiter, false),
      stream: false,
    },
  ])('$name: refunded', async ({ serve, stream }) => {
    const limiter = createRateLimiter({
      limits: [{ limit: 2, windowMs: 60_000 }],
      clock: new ManualClock(start),
    });
    const served = await serve(limiter);
    try {
      const abort = new AbortController();
      const request = fetch(served.base, { signal: abort.signal });
      if (stream) {
        // Headers and the first chunk arrived: the response had begun.
        const response = await request;
        expect(response.status).toBe(200);
        await response.body!.getReader().read();
      } else {
        request.catch(() => undefined);
        await expect.poll(async () => (await limiter.peek('custom:k')).remaining).toBe(1);
      }
      abort.abort();
      await served.gone;
      await expect.poll(async () => (await limiter.peek('custom:k')).remaining).toBe(2);
    } finally {
      await served.close();
      await limiter.close();
    }
  });
});

import type { AddressInfo } from 'node:net';
import { ManualClock } from '@noa/core';
import express from 'express';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { expressRateLimit } from '../src/express.js';
import { fastifyRateLimit } from '../src/fastify.js';
import { createRateLimiter, type RateLimiter } from '../src/index.js';

// A queueing leaky bucket admits a request with a `delayMs` that the middleware waits out before the
// route. A client that goes away meanwhile (a browser tab closed, a client timeout) has no route to
// run for, and its slot in the queue would otherwise go unused while live clients are refused or
// queued behind it: the slot is given back and the route is not called, as `acquire()` gives back
// the slot of a caller that aborts during its delay. (rate-limiter-flexible #113: a delayed
// request's slot; data-fair/data-fair#486: abandoned waits kept consuming tokens.)

const start = 1_700_000_000_000;
const key = 'ip:127.0.0.1';

/** One admitted at once, the next queued 1 s behind it, a third (2 s) past `queueMaxDelayMs`. */
const queueingLimiter = (): RateLimiter =>
  createRateLimiter({
    limits: [{ algorithm: 'leaky-bucket', limit: 1, windowMs: 1_000, queueMaxDelayMs: 1_500 }],
    // Frozen: every delay is exact, and the bucket drains nothing while the test runs.
    clock: new ManualClock(start),
  });

interface Served {
  base: string;
  routeRuns: () => number;
  close: () => Promise<void>;
}

const frameworks = [
  {
    name: 'Express',
    async serve(limiter: RateLimiter, skipFailedRequests: boolean): Promise<Served> {
      let runs = 0;
      const app = express();
      app.get('/', expressRateLimit({ limiter, skipFailedRequests }), (_req, res) => {
        runs += 1;
        res.send('ok');
      });
      const server = app.listen(0, '127.0.0.1');
      await new Promise((resolve) => server.once('listening', resolve));
      return {
        base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        routeRuns: () => runs,
        close: () => new Promise((resolve) => server.close(() => resolve())),
      };
    },
  },
  {
    name: 'Fastify',
    async serve(limiter: RateLimiter, skipFailedRequests: boolean): Promise<Served> {
      let runs = 0;
      const app = Fastify();
      await app.register(fastifyRateLimit, { limiter, skipFailedRequests });
      app.get('/', async () => {
        runs += 1;
        return 'ok';
      });
      await app.listen({ port: 0, host: '127.0.0.1' });
      return {
        base: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`,
        routeRuns: () => runs,
        close: () => app.close(),
      };
    },
  },
];

const cases = frameworks.flatMap((framework) =>
  [false, true].map((skipFailedRequests) => ({ ...framework, skipFailedRequests })),
);

describe('a client that goes away while its queued request waits out its delay', () => {
  it.each(cases)(
    '$name (skipFailedRequests: $skipFailedRequests): the route does not run and the slot is given back once',
    async ({ serve, skipFailedRequests }) => {
      const limiter = queueingLimiter();
      const served = await serve(limiter, skipFailedRequests);
      try {
        expect((await fetch(served.base)).status).toBe(200);
        const abort = new AbortController();
        const queued = fetch(served.base, { signal: abort.signal }).catch(() => 'aborted');
        // Checked and queued: the bucket is full 2 s ahead (its own slot and the first request's).
        await expect.poll(async () => (await limiter.peek(key)).resetMs).toBe(2_000);
        abort.abort();
        expect(await queued).toBe('aborted');
        // Given back exactly once: the first request's slot stays (a second refund would free it too).
        await expect.poll(async () => (await limiter.peek(key)).resetMs).toBe(1_000);
        // Past the delay the route would have run at: it has not.
        await new Promise((resolve) => setTimeout(resolve, 1_200));
        expect(served.routeRuns()).toBe(1);
        // The freed slot is a live client's: queued 1 s behind the first, not refused.
        const next = await limiter.check(key);
        expect([next.allowed, next.delayMs]).toEqual([true, 1_000]);
      } finally {
        await served.close();
        await limiter.close();
      }
    },
  );
});

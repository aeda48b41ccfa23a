import type { AddressInfo } from 'node:net';
import { ManualClock } from '@noa/core';
import express from 'express';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { expressRateLimit } from '../src/express.js';
import { fastifyRateLimit } from '../src/fastify.js';
import { createRateLimiter, type RequestFacts } from '../src/index.js';

const start = 1_700_000_000_000;

/** Serves `app` on a spare port; returns its base URL and a closer. */
async function serveExpress(app: express.Express): Promise<{ base: string; close: () => void }> {
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() };
}

describe('Express middleware after an earlier middleware sent the headers', () => {
  it('counts the request without failing it (no headers to add), and a refused one ends without the route', async () => {
    const app = express();
    const limiter = createRateLimiter({
      limits: [{ limit: 1, windowMs: 60_000 }],
      clock: new ManualClock(start),
    });
    const errors: string[] = [];
    let routeRuns = 0;
    // A streaming prelude (a progress line, an early flush) that hands on to the rest of the chain.
    app.use((_req, res, next) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('early;');
      next();
    });
    app.use(expressRateLimit({ limiter }));
    app.get('/', (_req, res) => {
      routeRuns += 1;
      res.end('route');
    });
    app.use((error: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      errors.push(error.message);
      res.end();
    });
    const { base, close } = await serveExpress(app);
    try {
      const first = await fetch(base);
      expect(await first.text()).toBe('early;route');
      const refused = await fetch(base);
      expect(await refused.text()).toBe('early;');
      expect(routeRuns).toBe(1);
      expect(errors).toEqual([]);
      expect((await limiter.peek('ip:127.0.0.1')).remaining).toBe(0);
    } finally {
      close();
    }
  });
});

describe('Fastify perEndpoint on paths no route matches', () => {
  it('counts them all as one endpoint, the catch-all "*" (a made-up path is no fresh quota, nor a new key)', async () => {
    const app = Fastify();
    const routes: string[] = [];
    const limiter = createRateLimiter({
      limits: [{ limit: 2, windowMs: 60_000 }],
      clock: new ManualClock(start),
    });
    await app.register(fastifyRateLimit, {
      limiter,
      perEndpoint: true,
      skip: (facts: RequestFacts) => {
        routes.push(facts.route);
        return false;
      },
    });
    app.get('/items/:id', async () => 'item');
    await app.listen({ port: 0, host: '127.0.0.1' });
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const status = (path: string) => fetch(base + path).then((response) => response.status);
    try {
      // A scanner's paths: each one made up, all of them 404s.
      expect(await status('/wp-login.php')).toBe(404);
      expect(await status('/.env?x=1')).toBe(404);
      expect(await status('/admin/')).toBe(429);
      expect(await status('/backup.zip')).toBe(429);
      // A route's own quota is apart from the 404s'.
      expect(await status('/items/1')).toBe(200);
      expect(routes).toEqual(['*', '*', '*', '*', '/items/:id']);
      expect((await limiter.peek('ip:127.0.0.1:GET *')).remaining).toBe(0);
    } finally {
      await app.close();
    }
  });
});

/** A promise and the function that resolves it. */
function signal(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {};
  const promise = new Promise<void>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

describe('skipFailedRequests and a client that leaves while its request is being checked', () => {
  // The key lookup waits until the test has seen the client go: the check ends after the close.
  const arrived = signal();
  const left = signal();
  const release = signal();
  // The route runs even for a client that has gone (as without a limiter): by then the check is done.
  const routeRan = signal();
  const slowKey = async () => {
    arrived.resolve();
    await release.promise;
    return 'slow';
  };

  const frameworks = [
    {
      name: 'Express',
      async serve(limiter: ReturnType<typeof createRateLimiter>) {
        const app = express();
        app.use((_req, res, next) => {
          res.once('close', () => left.resolve());
          next();
        });
        app.get('/', expressRateLimit({ limiter, keyBy: slowKey, skipFailedRequests: true }), (_req, res) => {
          routeRan.resolve();
          res.send('ok');
        });
        const { base, close } = await serveExpress(app);
        return { base, close: async () => close() };
      },
    },
    {
      name: 'Fastify',
      async serve(limiter: ReturnType<typeof createRateLimiter>) {
        const app = Fastify();
        app.addHook('onRequest', async (_request, reply) => {
          reply.raw.once('close', () => left.resolve());
        });
        await app.register(fastifyRateLimit, { limiter, keyBy: slowKey, skipFailedRequests: true });
        app.get('/', async () => {
          routeRan.resolve();
          return 'ok';
        });
        await app.listen({ port: 0, host: '127.0.0.1' });
        return {
          base: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`,
          close: () => app.close(),
        };
      },
    },
  ];

  it.each(frameworks)('$name: is refunded, as a client that leaves later is', async (framework) => {
    Object.assign(arrived, signal());
    Object.assign(left, signal());
    Object.assign(release, signal());
    Object.assign(routeRan, signal());
    const limiter = createRateLimiter({
      limits: [{ limit: 2, windowMs: 60_000 }],
      clock: new ManualClock(start),
    });
    const { base, close } = await framework.serve(limiter);
    try {
      const abort = new AbortController();
      const request = fetch(base, { signal: abort.signal }).catch(() => 'aborted');
      await arrived.promise;
      abort.abort();
      expect(await request).toBe('aborted');
      await left.promise;
      release.resolve();
      await routeRan.promise;
      // The refund is asynchronous: wait for it without a fixed sleep.
      await expect.poll(async () => (await limiter.peek('slow')).remaining).toBe(2);
    } finally {
      await close();
    }
  });
});

describe('Express perEndpoint on a route whose path is a RegExp or a list', () => {
  it('counts the route once, not each URL it matches (a made-up id is no fresh quota)', async () => {
    const app = express();
    const limit = () =>
      expressRateLimit({
        limiter: createRateLimiter({
          limits: [{ limit: 1, windowMs: 60_000 }],
          clock: new ManualClock(start),
        }),
        perEndpoint: true,
      });
    app.get(/^\/reports\/\d+$/, limit(), (_req, res) => {
      res.send('report');
    });
    app.get(['/a/:id', '/b/:id'], limit(), (_req, res) => {
      res.send('item');
    });
    const { base, close } = await serveExpress(app);
    const status = (path: string) => fetch(base + path).then((response) => response.status);
    try {
      expect(await status('/reports/1')).toBe(200);
      expect(await status('/reports/2')).toBe(429);
      expect(await status('/a/1')).toBe(200);
      expect(await status('/a/2')).toBe(429);
      expect(await status('/b/3')).toBe(429);
    } finally {
      close();
    }
  });
});

describe("keyBy 'api-key'", () => {
  it('keys by a digest of the API key: the secret is not written into the store, and a huge header is no huge key', async () => {
    const app = Fastify();
    await app.register(fastifyRateLimit, {
      limiter: createRateLimiter({ limits: [{ limit: 1, windowMs: 60_000 }], clock: new ManualClock(start) }),
      keyBy: 'api-key',
    });
    app.get('/', async (request) => request.rateLimit?.key);
    await app.listen({ port: 0, host: '127.0.0.1' });
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const call = async (apiKey: string) => {
      const response = await fetch(base, { headers: { 'x-api-key': apiKey } });
      return { status: response.status, body: await response.text() };
    };
    const secret = 'example-api-key-0123456789abcdef';
    const huge = 'k'.repeat(8_000);
    try {
      const first = await call(secret);
      expect(first.status).toBe(200);
      expect(first.body).not.toContain(secret);
      expect(first.body.startsWith('key:')).toBe(true);
      expect((await call(secret)).status).toBe(429);
      const other = await call(huge);
      expect(other.status).toBe(200);
      expect(other.body.length).toBeLessThanOrEqual(64);
      expect(other.body).not.toBe(first.body);
    } finally {
      await app.close();
    }
  });
});

import { Cache } from '@noa/cache-manager';
import { MemoryProvider, type Queue } from '@noa/message-queue';
import { createRateLimiter, expressRateLimit, type RateLimiter } from '@noa/rate-limiter';
import express, { type Express } from 'express';
import { Registry } from 'prom-client';
import { mountCacheRoutes } from './cache-routes.js';
import { type EmailJob, mountJobRoutes } from './job-routes.js';
import { mountUpstreamRoutes, PretendUpstream } from './upstream-routes.js';

/** What the demo app is made of, so tests (and later routes) can reach its parts. */
export interface DemoApp {
  app: Express;
  limiter: RateLimiter;
  cache: Cache;
  emails: Queue<EmailJob>;
  /** The pretend third-party API behind `/api/quotes/:symbol` (it records its calls). */
  upstream: PretendUpstream;
  close(): Promise<void>;
}

const page = (port: string) => `<!doctype html>
<title>Noa demo</title>
<h1>Noa demo</h1>
<h2>Rate limiting (@noa/rate-limiter)</h2>
<p><code>GET /api/hello</code> allows 5 requests per 10 seconds per client IP (fixed window, memory store).
The 6th gets <code>429 Too Many Requests</code> with <code>Retry-After</code> and an
<code>application/problem+json</code> body. Every answer carries the IETF
<code>RateLimit-Policy</code> and <code>RateLimit</code> headers.</p>
<pre>for i in 1 2 3 4 5 6; do curl -si http://localhost:${port}/api/hello | grep -iE '^(HTTP|ratelimit|retry-after)'; done</pre>
<h2>Caching (@noa/cache-manager)</h2>
<p><code>GET /api/products/:id</code> reads through an in-process cache: the first call runs a
150 ms "database" load (<code>X-Cache: MISS</code>), the next ones are served from memory
(<code>X-Cache: HIT</code>). <code>POST /api/products/:id/invalidate</code> drops it by tag;
<code>GET /api/cache/stats</code> shows hits and misses.</p>
<pre>curl -si http://localhost:${port}/api/products/42 | grep -iE '^x-cache'; curl -si http://localhost:${port}/api/products/42 | grep -iE '^x-cache'</pre>
<h2>Calling an API under its quota (@noa/rate-limiter <code>acquire</code>)</h2>
<p><code>GET /api/quotes/:symbol</code> calls a pretend upstream that allows 2 calls per second.
Requests over that quota wait their turn (<code>limiter.acquire()</code>, up to 3 s) instead of
failing; each answer says how long it waited.</p>
<pre>for s in A B C D; do curl -s http://localhost:${port}/api/quotes/$s & done; wait</pre>
<h2>Jobs (@noa/message-queue)</h2>
<p><code>POST /api/jobs/email</code> enqueues a job (payload checked by a zod schema: a bad
address gets a 400 naming the field); a worker processes it in the background;
<code>GET /api/jobs/email/:id</code> shows its state and result.</p>
<pre>curl -s -XPOST -H 'content-type: application/json' -d '{"to":"ada@example.com","subject":"hi"}' http://localhost:${port}/api/jobs/email</pre>
`;

/** Builds the demo Express app on in-memory stores (no services needed). */
export function createApp(): DemoApp {
  const app = express();
  // Behind a proxy set this to its address so req.ip (the rate-limit key) is the real client.
  app.set('trust proxy', 'loopback');
  // One prom-client registry for every package's metrics, served on /metrics.
  const registry = new Registry();
  const limiter = createRateLimiter({
    registry,
    limits: [{ name: 'hello', algorithm: 'fixed-window', limit: 5, windowMs: 10_000 }],
  });
  app.get('/', (req, res) => {
    res.type('html').send(page(String(req.socket.localPort ?? 3000)));
  });
  app.get('/api/hello', expressRateLimit({ limiter }), (req, res) => {
    res.json({
      hello: 'world',
      remaining: (req as { rateLimit?: { remaining: number } }).rateLimit?.remaining,
    });
  });
  const cache = new Cache({ ttlMs: 30_000, graceMs: 300_000, registry });
  mountCacheRoutes(app, cache);
  const upstream = new PretendUpstream();
  const outbound = mountUpstreamRoutes(app, upstream, registry);
  const provider = new MemoryProvider();
  const { emails, worker } = mountJobRoutes(app, provider, registry);
  app.get('/metrics', async (_req, res) => {
    res.type(registry.contentType).send(await registry.metrics());
  });
  return {
    app,
    limiter,
    cache,
    emails,
    upstream,
    close: async () => {
      await outbound.close();
      await worker.close();
      await provider.close();
      await cache.close();
      await limiter.close();
    },
  };
}

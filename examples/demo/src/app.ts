import { Cache } from '@noa/cache-manager';
import { type HealthCheckEntry, livenessHandler, readinessHandler } from '@noa/core';
import { MemoryProvider, type Queue } from '@noa/message-queue';
import { createRateLimiter, type RateLimiter } from '@noa/rate-limiter';
import { expressRateLimit } from '@noa/rate-limiter/express';
import { RedisStore } from '@noa/rate-limiter/redis';
import express, { type Express } from 'express';
import { Registry } from 'prom-client';
import { mountCacheRoutes } from './cache-routes.js';
import type { ServicesConfig } from './config.js';
import { type EmailJob, mountJobRoutes } from './job-routes.js';
import { PostgresProducts, PretendProducts } from './products.js';
import { connectServices, consoleWarnings, type Services } from './services.js';
import { mountUpstreamRoutes, PretendUpstream } from './upstream-routes.js';

/** Options of {@link createApp}. */
export interface AppOptions {
  /**
   * Run on Redis, Postgres and RabbitMQ, shared with every other instance given the same
   * services (see the README). Without it every store is in process: no services needed.
   */
  services?: ServicesConfig;
  /**
   * Services mode: how long a rate-limit check waits for Redis before the fail mode answers
   * (default 100 ms; the library's default of 25 ms suits a Redis next to the app, a busy laptop
   * needs more). Tests that count 429s exactly set it high, so a slow moment never lets each
   * instance's local share decide.
   */
  rateLimitDeadlineMs?: number;
}

/** What the demo app is made of, so tests (and later routes) can reach its parts. */
export interface DemoApp {
  app: Express;
  /** `memory`: in-process stores; `services`: Redis, Postgres and RabbitMQ. */
  mode: 'memory' | 'services';
  limiter: RateLimiter;
  cache: Cache;
  emails: Queue<EmailJob>;
  /** The pretend third-party API behind `/api/quotes/:symbol` (it records its calls). */
  upstream: PretendUpstream;
  /** The services mode's connections (undefined in memory mode). */
  services: Services | undefined;
  /**
   * Resolves once the services answer, the products table exists and the cache's bus listens;
   * rejects naming the service that does not answer. At once in memory mode.
   */
  ready(): Promise<void>;
  /**
   * Begins shutdown: `/readyz` and `/livez` answer 503 from now on, while every route still
   * serves, so the endpoints drop this instance before `close()` (call it first on SIGTERM).
   */
  beginShutdown(): void;
  close(): Promise<void>;
}

const stores = {
  memory:
    'every store is in this process (start it with REDIS_URL, DATABASE_URL and AMQP_URL set for the services mode)',
  services:
    'rate limits and the cache in Redis, products in Postgres, jobs on RabbitMQ: shared by every instance started with the same services',
};

const page = (port: string, mode: DemoApp['mode']) => `<!doctype html>
<title>Noa demo</title>
<h1>Noa demo</h1>
<p>Mode: <b>${mode}</b>: ${stores[mode]}.</p>
<h2>Rate limiting (@noa/rate-limiter)</h2>
<p><code>GET /api/hello</code> allows 5 requests per 10 seconds per client IP (fixed window, ${mode === 'memory' ? 'memory store' : 'Redis store'}).
The 6th gets <code>429 Too Many Requests</code> with <code>Retry-After</code> and an
<code>application/problem+json</code> body. Every answer carries the IETF
<code>RateLimit-Policy</code> and <code>RateLimit</code> headers.</p>
<pre>for i in 1 2 3 4 5 6; do curl -si http://localhost:${port}/api/hello | grep -iE '^(HTTP|ratelimit|retry-after)'; done</pre>
<h2>Caching (@noa/cache-manager)</h2>
<p><code>GET /api/products/:id</code> reads through the cache: the first call loads the product
(${mode === 'memory' ? 'a pretend 150 ms database' : 'from Postgres, ids 1 to 100'}; <code>X-Cache: MISS</code>), the next ones are
served from memory (<code>X-Cache: HIT</code>${mode === 'memory' ? '' : '; another instance finds it in Redis'}).
<code>POST /api/products/:id/invalidate</code> drops it by tag${mode === 'memory' ? '' : ' on every instance'};
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
<h2>Readiness (@noa/core)</h2>
<p><code>GET /readyz</code> combines every package's health: 200 while ready (<code>up</code> or
<code>degraded</code>), 503 while a required component (${mode === 'memory' ? 'none in memory mode' : 'Postgres'}) is down.</p>
<pre>curl -s http://localhost:${port}/readyz</pre>
`;

/**
 * Builds the demo Express app: in memory by default, or on the services in `options.services`.
 * In services mode, await `ready()` before serving.
 */
export function createApp(options: AppOptions = {}): DemoApp {
  const app = express();
  const mode = options.services ? 'services' : 'memory';
  // Behind a proxy set this to its address so req.ip (the rate-limit key) is the real client.
  app.set('trust proxy', 'loopback');
  // One prom-client registry for every package's metrics, served on /metrics.
  const registry = new Registry();
  const services = options.services && connectServices(options.services, registry);
  // In Redis, a limit is shared: two instances together allow it once, not twice.
  const sharedLimits = (name: string) =>
    services && {
      store: new RedisStore({ client: services.limiterRedis, prefix: `${services.namespace}:rl:${name}:` }),
      // While Redis is down, each instance allows its share of the limit (limit / instances).
      failMode: 'local' as const,
      expectedInstances: services.instances,
      deadlineMs: options.rateLimitDeadlineMs ?? 100,
      logger: consoleWarnings,
    };
  const limiter = createRateLimiter({
    name: 'hello',
    registry,
    limits: [{ name: 'hello', algorithm: 'fixed-window', limit: 5, windowMs: 10_000 }],
    ...sharedLimits('hello'),
  });
  app.get('/', (req, res) => {
    res.type('html').send(page(String(req.socket.localPort ?? 3000), mode));
  });
  app.get('/api/hello', expressRateLimit({ limiter }), (req, res) => {
    res.json({
      hello: 'world',
      remaining: (req as { rateLimit?: { remaining: number } }).rateLimit?.remaining,
    });
  });
  // With Redis: an L2 every instance reads, and a bus that evicts other instances' L1 copies.
  const cache = new Cache({
    name: 'products',
    ttlMs: 30_000,
    graceMs: 300_000,
    registry,
    ...(services && {
      redis: services.cacheRedis,
      prefix: `${services.namespace}:cache:`,
      logger: consoleWarnings,
    }),
  });
  const products = services ? new PostgresProducts(services.db, services.namespace) : new PretendProducts();
  mountCacheRoutes(app, cache, products);
  const upstream = new PretendUpstream();
  const outbound = mountUpstreamRoutes(app, upstream, registry, sharedLimits('upstream'));
  const provider = services?.jobs ?? new MemoryProvider();
  const { emails, worker } = mountJobRoutes(app, provider, {
    queueName: services ? `${services.namespace}.emails` : 'emails',
    registry,
  });
  app.get('/metrics', async (_req, res) => {
    res.type(registry.contentType).send(await registry.metrics());
  });
  // Readiness for Kubernetes: 503 only while a required component is down. Postgres is required
  // (products need it); the limiter and the cache answer from fallbacks, and jobs are a side
  // feature, so their outages show as `degraded` (200): every instance shares those services,
  // and failing readiness on all of them at once would leave the Service with no endpoint.
  const checks: Record<string, HealthCheckEntry> = {
    limiter: { check: () => limiter.health(), required: false },
    cache: { check: () => cache.health(), required: false },
    emails: { check: () => worker.health(), required: false },
  };
  if (services) checks.db = { check: () => services.db.checkHealth() };
  const readiness = readinessHandler(checks);
  app.get('/readyz', readiness);
  // Liveness calls no backend: 200 until shutdown begins (a Redis outage must not restart pods).
  app.get('/livez', livenessHandler({ signal: readiness.signal }));
  return {
    app,
    mode,
    limiter,
    cache,
    emails,
    upstream,
    services,
    ready: async () => {
      await services?.ready();
      if (products instanceof PostgresProducts) await products.createTable();
      await cache.ready();
    },
    beginShutdown: () => readiness.beginShutdown(),
    close: async () => {
      readiness.beginShutdown();
      await outbound.close();
      await worker.close();
      await provider.close();
      await cache.close();
      await limiter.close();
      await services?.close();
    },
  };
}

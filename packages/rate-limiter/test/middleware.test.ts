import type { AddressInfo } from 'node:net';
import { ConfigError, ManualClock } from '@noa/core';
import express from 'express';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expressRateLimit } from '../src/express.js';
import { fastifyRateLimit } from '../src/fastify.js';
import {
  createRateLimiter,
  InvalidCheckInputError,
  quotaExceededType,
  type RequestFacts,
} from '../src/index.js';
import {
  checkInputOf,
  middlewareOptionsSchema,
  type ParsedMiddlewareOptions,
} from '../src/middleware/options.js';

const start = 1_700_000_000_000;

async function get(base: string, path: string, headers: Record<string, string> = {}) {
  const response = await fetch(base + path, { headers });
  const text = await response.text();
  return { status: response.status, headers: response.headers, text };
}

describe('Express middleware over HTTP', () => {
  let base = '';
  let close = () => {};
  beforeAll(async () => {
    const clock = new ManualClock(start);
    const app = express();
    app.set('trust proxy', 'loopback');
    const limiter = createRateLimiter({
      limits: [
        { name: 'burst', limit: 2, windowMs: 10_000 },
        { name: 'daily', limit: 100, windowMs: 86_400_000 },
      ],
      allow: ['198.51.100.0/24'],
      deny: ['203.0.113.66', '2001:db8:bad::/48'],
      clock,
    });
    app.use('/api', expressRateLimit({ limiter, headers: { legacy: true } }));
    app.get('/api/hello', (_req, res) => {
      res.json({ hello: 'world' });
    });
    const strict = createRateLimiter({ limits: [{ limit: 1, windowMs: 60_000 }], clock });
    app.post('/login', expressRateLimit({ limiter: strict, perEndpoint: true }), (_req, res) => {
      res.send('ok');
    });
    app.get('/skipped', expressRateLimit({ limiter: strict, skip: () => true }), (_req, res) => {
      res.send('ok');
    });
    const smooth = createRateLimiter({
      limits: [{ algorithm: 'leaky-bucket', limit: 20, windowMs: 1_000, burst: 1, queueMaxDelayMs: 200 }],
      // The 8 requests below arrive at one instant: on a loaded machine they can arrive over more
      // than the 200 ms of queue the bucket drains meanwhile, and none would be refused.
      clock,
    });
    app.get('/smooth', expressRateLimit({ limiter: smooth }), (req, res) => {
      res.json({ delayMs: (req as { rateLimit?: { delayMs: number } }).rateLimit?.delayMs });
    });
    const custom = createRateLimiter({ limits: [{ limit: 1, windowMs: 60_000 }], clock });
    app.get(
      '/custom',
      expressRateLimit({
        limiter: custom,
        role: (facts) => (facts.headers['x-role'] === 'admin' ? 'admin' : undefined),
        handler: (_req, res, result) => {
          res.statusCode = 503;
          res.end(`busy:${result.outcome}`);
        },
      }),
      (_req, res) => {
        res.send('ok');
      },
    );
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    close = () => server.close();
  });
  afterAll(() => close());

  it('sets IETF and legacy headers, then 429 with Retry-After and a problem+json body', async () => {
    const first = await get(base, '/api/hello', { 'x-forwarded-for': '192.0.2.1' });
    expect(first.status).toBe(200);
    expect(first.headers.get('ratelimit-policy')).toBe('"burst";q=2;w=10, "daily";q=100;w=86400');
    expect(first.headers.get('ratelimit')).toMatch(/^"burst";r=1;t=\d+, "daily";r=99;t=\d+$/);
    expect(first.headers.get('x-ratelimit-limit')).toBe('2');
    expect(first.headers.get('x-ratelimit-remaining')).toBe('1');
    await get(base, '/api/hello', { 'x-forwarded-for': '192.0.2.1' });
    const refused = await get(base, '/api/hello', { 'x-forwarded-for': '192.0.2.1' });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('content-type')).toContain('application/problem+json');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    const body = JSON.parse(refused.text);
    expect(body).toMatchObject({ type: quotaExceededType, status: 429, 'violated-policies': ['burst'] });
  });

  it('keys by the client IP from X-Forwarded-For when Express trusts the proxy', async () => {
    expect((await get(base, '/api/hello', { 'x-forwarded-for': '192.0.2.2' })).status).toBe(200);
    expect((await get(base, '/api/hello', { 'x-forwarded-for': '192.0.2.3' })).status).toBe(200);
  });

  it('honours allow and deny lists', async () => {
    for (let index = 0; index < 4; index += 1)
      expect((await get(base, '/api/hello', { 'x-forwarded-for': '198.51.100.9' })).status).toBe(200);
    expect((await get(base, '/api/hello', { 'x-forwarded-for': '203.0.113.66' })).status).toBe(403);
    expect((await get(base, '/api/hello', { 'x-forwarded-for': '2001:db8:bad::1' })).status).toBe(403);
  });

  it('queues with a leaky bucket: later requests are admitted with a delay, then refused', async () => {
    const responses = await Promise.all(Array.from({ length: 8 }, () => fetch(`${base}/smooth`)));
    const statuses = responses.map((response) => response.status);
    const delays: number[] = [];
    for (const response of responses)
      if (response.status === 200) delays.push(((await response.json()) as { delayMs: number }).delayMs);
      else await response.text();
    delays.sort((a, b) => a - b);
    expect(statuses).toContain(200);
    expect(statuses).toContain(429);
    expect(delays[0]).toBe(0);
    expect(Math.max(...delays)).toBeGreaterThan(0);
    expect(Math.max(...delays)).toBeLessThanOrEqual(200);
  });

  it('calls a custom refusal handler with the result', async () => {
    expect((await get(base, '/custom')).status).toBe(200);
    const refused = await get(base, '/custom');
    expect(refused.status).toBe(503);
    expect(refused.text).toBe('busy:limited');
    expect(refused.headers.get('retry-after')).not.toBeNull();
  });

  it('applies per-route middleware and skip rules', async () => {
    const post = () => fetch(`${base}/login`, { method: 'POST' }).then((response) => response.status);
    expect(await post()).toBe(200);
    expect(await post()).toBe(429);
    for (let index = 0; index < 3; index += 1) expect((await get(base, '/skipped')).status).toBe(200);
  });
});

describe('Fastify plugin over HTTP', () => {
  let base = '';
  const app = Fastify({ trustProxy: '127.0.0.1' });
  beforeAll(async () => {
    const clock = new ManualClock(start);
    const limiter = createRateLimiter({
      limits: [{ name: 'api', limit: 2, windowMs: 10_000 }],
      roles: { internal: 'unlimited' },
      deny: ['203.0.113.0/24'],
      clock,
    });
    const tight = createRateLimiter({ limits: [{ name: 'tight', limit: 1, windowMs: 60_000 }], clock });
    await app.register(fastifyRateLimit, {
      limiter,
      keyBy: 'api-key',
      role: (facts) => (facts.headers['x-internal'] === 'yes' ? 'internal' : undefined),
    });
    app.get('/hello', async () => ({ hello: 'world' }));
    app.get('/tight', { config: { rateLimit: { limiter: tight } } }, async () => 'tight');
    app.get('/health', { config: { rateLimit: false } }, async () => 'ok');
    await app.listen({ port: 0, host: '127.0.0.1' });
    base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  });
  afterAll(() => app.close());

  it('limits by API key, with headers and a problem+json 429', async () => {
    const headers = { 'x-api-key': 'k1' };
    const first = await get(base, '/hello', headers);
    expect(first.status).toBe(200);
    expect(first.headers.get('ratelimit-policy')).toBe('"api";q=2;w=10');
    expect(first.headers.get('ratelimit')).toMatch(/^"api";r=1;t=\d+$/);
    await get(base, '/hello', headers);
    const refused = await get(base, '/hello', headers);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('content-type')).toContain('application/problem+json');
    expect(refused.headers.get('retry-after')).not.toBeNull();
    expect(JSON.parse(refused.text)).toMatchObject({ type: quotaExceededType, status: 429 });
    expect((await get(base, '/hello', { 'x-api-key': 'k2' })).status).toBe(200);
  });

  it('falls back to the client IP (trustProxy) when there is no API key', async () => {
    const from = (ip: string) => get(base, '/hello', { 'x-forwarded-for': ip });
    expect((await from('192.0.2.10')).status).toBe(200);
    expect((await from('192.0.2.10')).status).toBe(200);
    expect((await from('192.0.2.10')).status).toBe(429);
    expect((await from('192.0.2.11')).status).toBe(200);
  });

  it('refuses deny-listed clients with 403 and never limits an unlimited role', async () => {
    const denied = await get(base, '/hello', { 'x-forwarded-for': '203.0.113.9' });
    expect(denied.status).toBe(403);
    expect(JSON.parse(denied.text)).toMatchObject({ status: 403 });
    for (let index = 0; index < 5; index += 1)
      expect((await get(base, '/hello', { 'x-api-key': 'svc', 'x-internal': 'yes' })).status).toBe(200);
  });

  it('applies per-route config and exemptions', async () => {
    expect((await get(base, '/tight', { 'x-api-key': 'k9' })).status).toBe(200);
    const refused = await get(base, '/tight', { 'x-api-key': 'k9' });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('ratelimit-policy')).toBe('"tight";q=1;w=60');
    for (let index = 0; index < 5; index += 1) expect((await get(base, '/health')).status).toBe(200);
  });
});

describe('Express key extractors, cost and per-endpoint keys over HTTP', () => {
  let base = '';
  let close = () => {};
  beforeAll(async () => {
    const clock = new ManualClock(start);
    const app = express();
    app.set('trust proxy', 'loopback');
    // What an auth middleware (passport and friends) does: req.user before the limiter runs.
    app.use((req, _res, next) => {
      const user = req.headers['x-user'];
      if (typeof user === 'string') (req as { user?: unknown }).user = { id: user };
      next();
    });
    const byUser = createRateLimiter({ limits: [{ limit: 2, windowMs: 60_000 }], clock });
    app.get('/user', expressRateLimit({ limiter: byUser, keyBy: 'user' }), (req, res) => {
      res.send((req as { rateLimit?: { key: string } }).rateLimit?.key);
    });
    const byTenant = createRateLimiter({ limits: [{ limit: 1, windowMs: 60_000 }], clock });
    const tenantOf = (facts: RequestFacts) => {
      const tenant = facts.headers['x-tenant'];
      return typeof tenant === 'string' ? `tenant:${tenant}` : undefined;
    };
    app.get('/tenant', expressRateLimit({ limiter: byTenant, keyBy: tenantOf }), (_req, res) => {
      res.send('ok');
    });
    const costly = createRateLimiter({ limits: [{ limit: 10, windowMs: 60_000 }], clock });
    const costOf = (facts: RequestFacts) => Number(facts.headers['x-cost'] ?? 1);
    app.get('/cost', expressRateLimit({ limiter: costly, cost: costOf }), (_req, res) => {
      res.send('ok');
    });
    const endpoints = createRateLimiter({ limits: [{ limit: 1, windowMs: 60_000 }], clock });
    const perEndpoint = expressRateLimit({ limiter: endpoints, perEndpoint: true });
    app.get('/items/:id', perEndpoint, (_req, res) => {
      res.send('item');
    });
    app.get('/orders/:id', perEndpoint, (_req, res) => {
      res.send('order');
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    close = () => server.close();
  });
  afterAll(() => close());

  it("keyBy 'user' counts req.user.id, and falls back to the IP without a user", async () => {
    const as = (user: string) => get(base, '/user', { 'x-user': user, 'x-forwarded-for': '192.0.2.20' });
    const first = await as('ada');
    expect([first.status, first.text]).toEqual([200, 'user:ada']);
    expect((await as('ada')).status).toBe(200);
    expect((await as('ada')).status).toBe(429);
    // Same IP, another user: its own quota.
    expect((await as('bob')).status).toBe(200);
    const anonymous = await get(base, '/user', { 'x-forwarded-for': '192.0.2.20' });
    expect([anonymous.status, anonymous.text]).toEqual([200, 'ip:192.0.2.20']);
  });

  it('keyBy a function keys by what it returns', async () => {
    const as = (tenant: string, ip: string) =>
      get(base, '/tenant', { 'x-tenant': tenant, 'x-forwarded-for': ip }).then((response) => response.status);
    expect(await as('acme', '192.0.2.30')).toBe(200);
    // Another client IP of the same tenant shares its quota.
    expect(await as('acme', '192.0.2.31')).toBe(429);
    expect(await as('globex', '192.0.2.30')).toBe(200);
  });

  it('a cost function charges each request its own points', async () => {
    const charge = (cost: number) =>
      get(base, '/cost', { 'x-cost': String(cost), 'x-forwarded-for': '192.0.2.40' });
    const first = await charge(7);
    expect(first.status).toBe(200);
    expect(first.headers.get('ratelimit')).toMatch(/^"default";r=3;/);
    expect((await charge(4)).status).toBe(429);
    expect((await charge(3)).status).toBe(200);
  });

  it('perEndpoint counts each method + route pattern separately', async () => {
    const from = (path: string) =>
      get(base, path, { 'x-forwarded-for': '192.0.2.50' }).then((response) => response.status);
    expect(await from('/items/1')).toBe(200);
    // Another id is the same route pattern: the same quota.
    expect(await from('/items/2')).toBe(429);
    expect(await from('/orders/1')).toBe(200);
  });
});

describe('Fastify plugin options over HTTP', () => {
  let base = '';
  const app = Fastify({ trustProxy: '127.0.0.1' });
  beforeAll(async () => {
    const clock = new ManualClock(start);
    const limiter = createRateLimiter({ limits: [{ limit: 1, windowMs: 60_000 }], clock });
    await app.register(fastifyRateLimit, {
      limiter,
      global: false,
      skip: (facts) => facts.headers['x-skip'] === 'yes',
      handler: (_request, reply, result) =>
        reply.code(503).send({ busy: result.outcome, retryAfterMs: result.retryAfterMs }),
    });
    app.get('/open', async () => 'open');
    app.get('/limited', { config: { rateLimit: {} } }, async () => 'limited');
    await app.listen({ port: 0, host: '127.0.0.1' });
    base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  });
  afterAll(() => app.close());

  it('global: false limits only the routes with config.rateLimit', async () => {
    for (let index = 0; index < 3; index += 1) {
      const open = await get(base, '/open', { 'x-forwarded-for': '192.0.2.60' });
      expect(open.status).toBe(200);
      expect(open.headers.get('ratelimit')).toBeNull();
    }
    expect((await get(base, '/limited', { 'x-forwarded-for': '192.0.2.60' })).status).toBe(200);
  });

  it('calls the custom handler with the result, after setting the headers', async () => {
    expect((await get(base, '/limited', { 'x-forwarded-for': '192.0.2.61' })).status).toBe(200);
    const refused = await get(base, '/limited', { 'x-forwarded-for': '192.0.2.61' });
    expect(refused.status).toBe(503);
    // Fixed windows are aligned to the epoch: `start` is 20 s into its minute.
    expect(JSON.parse(refused.text)).toEqual({ busy: 'limited', retryAfterMs: 40_000 });
    expect(refused.headers.get('retry-after')).toBe('40');
    expect(refused.headers.get('ratelimit')).toMatch(/^"default";r=0;/);
  });

  it('skip exempts the requests it returns true for', async () => {
    for (let index = 0; index < 3; index += 1)
      expect((await get(base, '/limited', { 'x-forwarded-for': '192.0.2.62', 'x-skip': 'yes' })).status).toBe(
        200,
      );
    expect((await get(base, '/limited', { 'x-forwarded-for': '192.0.2.62' })).status).toBe(200);
  });
});

describe('middleware options are validated', () => {
  const fieldsOf = (build: () => unknown): string[] => {
    try {
      build();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return [...(error as ConfigError).fields].sort();
    }
    throw new Error('expected a ConfigError');
  };

  it('expressRateLimit throws a ConfigError naming each bad field', () => {
    const limiter = createRateLimiter({ limits: [{ limit: 1, windowMs: 1_000 }] });
    expect(fieldsOf(() => expressRateLimit({} as never))).toEqual(['limiter']);
    expect(fieldsOf(() => expressRateLimit({ limiter: { check() {} } } as never))).toEqual(['limiter']);
    expect(
      fieldsOf(() =>
        expressRateLimit({ limiter, keyBy: 'cookie', cost: -1, headers: { draft: 8 } } as never),
      ),
    ).toEqual(['cost', 'headers.draft', 'keyBy']);
  });

  it('a route config.rateLimit with a bad field fails at registration, naming the route', async () => {
    const app = Fastify();
    const limiter = createRateLimiter({ limits: [{ limit: 1, windowMs: 1_000 }] });
    await app.register(fastifyRateLimit, { limiter });
    let caught: unknown;
    try {
      app.get('/bad', { config: { rateLimit: { keyBy: 'cookie' } as never } }, async () => 'ok');
      await app.ready();
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).message).toContain('GET /bad');
    expect((caught as ConfigError).fields).toEqual(['keyBy']);
    await app.close();
  });
});

describe('Fastify plugin in a later hook', () => {
  /** An app whose auth runs in an onRequest hook added after the plugin (the usual order). */
  async function appWith(hook: 'onRequest' | 'preHandler' | undefined) {
    const app = Fastify({ trustProxy: '127.0.0.1' });
    const limiter = createRateLimiter({
      limits: [{ limit: 1, windowMs: 60_000 }],
      clock: new ManualClock(start),
    });
    await app.register(fastifyRateLimit, { limiter, keyBy: 'user', ...(hook === undefined ? {} : { hook }) });
    app.decorateRequest('user', undefined);
    app.addHook('onRequest', async (request) => {
      const user = request.headers['x-user'];
      if (typeof user === 'string') (request as unknown as { user: unknown }).user = { id: user };
    });
    app.get('/me', async (request) => request.rateLimit?.key);
    return app;
  }
  const as = (app: Awaited<ReturnType<typeof appWith>>, user: string) =>
    app.inject({ url: '/me', headers: { 'x-user': user } });

  it("hook: 'preHandler' sees what authentication hooks set (keyBy 'user' per user)", async () => {
    const app = await appWith('preHandler');
    const ada = await as(app, 'ada');
    expect([ada.statusCode, ada.body]).toEqual([200, 'user:ada']);
    expect((await as(app, 'bob')).statusCode).toBe(200);
    expect((await as(app, 'ada')).statusCode).toBe(429);
    await app.close();
  });

  it('the default onRequest hook runs before them, so every user shares the IP key', async () => {
    const app = await appWith(undefined);
    const ada = await as(app, 'ada');
    expect([ada.statusCode, ada.body]).toEqual([200, 'ip:127.0.0.1']);
    expect((await as(app, 'bob')).statusCode).toBe(429);
    await app.close();
  });
});

describe('IPv6 clients are keyed by subnet', () => {
  let base = '';
  let close = () => {};
  beforeAll(async () => {
    const app = express();
    app.set('trust proxy', 'loopback');
    const clock = new ManualClock(start);
    const bySubnet = createRateLimiter({ limits: [{ limit: 1, windowMs: 60_000 }], clock });
    app.get('/subnet', expressRateLimit({ limiter: bySubnet }), (_req, res) => {
      res.send('ok');
    });
    const byAddress = createRateLimiter({ limits: [{ limit: 1, windowMs: 60_000 }], clock });
    app.get('/address', expressRateLimit({ limiter: byAddress, ipv6Subnet: false }), (_req, res) => {
      res.send('ok');
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    close = () => server.close();
  });
  afterAll(() => close());

  const from = (path: string, ip: string) =>
    get(base, path, { 'x-forwarded-for': ip }).then((response) => response.status);

  it('one client cannot dodge the limit by rotating addresses within its /56', async () => {
    expect(await from('/subnet', '2001:db8:1:2::10')).toBe(200);
    expect(await from('/subnet', '2001:db8:1:2::99')).toBe(429);
    expect(await from('/subnet', '2001:db8:1:2f::1')).toBe(429);
    expect(await from('/subnet', '2001:db8:1:100::1')).toBe(200);
  });

  it('ipv6Subnet: false keys each address', async () => {
    expect(await from('/address', '2001:db8:1:2::10')).toBe(200);
    expect(await from('/address', '2001:db8:1:2::99')).toBe(200);
  });
});

describe('Fastify routes declared before the plugin', () => {
  it('keep their config.rateLimit (exemption or overrides)', async () => {
    const app = Fastify();
    const clock = new ManualClock(start);
    const tight = createRateLimiter({ limits: [{ name: 'tight', limit: 1, windowMs: 60_000 }], clock });
    app.get('/health', { config: { rateLimit: false } }, async () => 'ok');
    app.get('/tight', { config: { rateLimit: { limiter: tight } } }, async () => 'ok');
    const limiter = createRateLimiter({ limits: [{ limit: 2, windowMs: 60_000 }], clock });
    await app.register(fastifyRateLimit, { limiter });
    app.get('/after', async () => 'ok');
    const statuses = async (url: string, times: number) => {
      const codes: number[] = [];
      for (let index = 0; index < times; index += 1) codes.push((await app.inject({ url })).statusCode);
      return codes;
    };
    expect(await statuses('/health', 4)).toEqual([200, 200, 200, 200]);
    const tightReply = await app.inject({ url: '/tight' });
    expect(tightReply.headers['ratelimit-policy']).toBe('"tight";q=1;w=60');
    expect(await statuses('/tight', 1)).toEqual([429]);
    expect(await statuses('/after', 3)).toEqual([200, 200, 429]);
    await app.close();
  });
});

describe('Express trust proxy misconfiguration', () => {
  async function warningsFrom(trustProxy: boolean | string, headers: Record<string, string>[]) {
    const app = express();
    app.set('trust proxy', trustProxy);
    const limiter = createRateLimiter({ limits: [{ limit: 100, windowMs: 60_000 }] });
    app.get('/', expressRateLimit({ limiter }), (_req, res) => {
      res.send('ok');
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    try {
      for (const sent of headers)
        await get(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, '/', sent);
      // process warnings are emitted on the next tick.
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('warning', onWarning);
      server.close();
      await limiter.close();
    }
    return warnings.map((warning) => (warning as Error & { code?: string }).code);
  }

  it('warns once when X-Forwarded-For arrives but Express trusts no proxy (every client would share the proxy IP)', async () => {
    const codes = await warningsFrom(false, [
      {},
      { 'x-forwarded-for': '192.0.2.1' },
      { 'x-forwarded-for': '192.0.2.2' },
    ]);
    expect(codes).toEqual(['NOA_RATE_LIMIT_UNTRUSTED_FORWARDED_FOR']);
  });

  it("warns once when 'trust proxy' is true (any client can pick its IP, and its quota)", async () => {
    expect(await warningsFrom(true, [{}, {}])).toEqual(['NOA_RATE_LIMIT_PERMISSIVE_TRUST_PROXY']);
  });

  it('stays quiet when trust proxy names the proxies', async () => {
    expect(await warningsFrom('loopback', [{ 'x-forwarded-for': '192.0.2.1' }])).toEqual([]);
  });
});

/** Serves `app` on a spare port; returns its base URL and a closer. */
async function serveExpress(app: express.Express): Promise<{ base: string; close: () => void }> {
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() };
}

describe('Express middleware mounted twice on one path', () => {
  it('counts each request once (app.use and a router both use it)', async () => {
    const app = express();
    const limiter = createRateLimiter({
      limits: [{ limit: 10, windowMs: 60_000 }],
      clock: new ManualClock(start),
    });
    const limit = expressRateLimit({ limiter });
    const router = express.Router();
    router.use(limit);
    router.get('/x', (_req, res) => {
      res.send('ok');
    });
    app.use('/api', limit, router);
    const { base, close } = await serveExpress(app);
    try {
      expect((await get(base, '/api/x')).headers.get('ratelimit')).toBe('"default";r=9;t=40');
      expect((await get(base, '/api/x')).headers.get('ratelimit')).toBe('"default";r=8;t=40');
    } finally {
      close();
    }
  });
});

describe('request keys that come out empty', () => {
  const limiter = createRateLimiter({ limits: [{ limit: 1, windowMs: 60_000 }] });
  const facts = (ip: string, headers: Record<string, string> = {}, user?: unknown): RequestFacts => ({
    ip,
    method: 'GET',
    route: '/',
    headers,
    user,
  });
  const keyOf = (options: Partial<ParsedMiddlewareOptions>, requestFacts: RequestFacts) => {
    const input = checkInputOf(requestFacts, middlewareOptionsSchema.parse({ limiter, ...options }));
    // Sync options are answered without a promise (no extra tick per request).
    if (input instanceof Promise) throw new Error('sync options gave a promise');
    return input.key;
  };

  it("fall back to the client's IP, as a missing one does (not one '' key that every such client shares)", () => {
    const fromHeader = (f: RequestFacts) => f.headers['x-tenant'] as string | undefined;
    expect(keyOf({ keyBy: fromHeader }, facts('192.0.2.1', { 'x-tenant': '' }))).toBe('ip:192.0.2.1');
    expect(keyOf({ keyBy: fromHeader }, facts('192.0.2.2', { 'x-tenant': '' }))).toBe('ip:192.0.2.2');
    expect(keyOf({ keyBy: 'user' }, facts('192.0.2.3', {}, { id: '' }))).toBe('ip:192.0.2.3');
    expect(keyOf({ keyBy: 'api-key' }, facts('192.0.2.4', { 'x-api-key': '' }))).toBe('ip:192.0.2.4');
    // What is there still counts.
    expect(keyOf({ keyBy: fromHeader }, facts('192.0.2.1', { 'x-tenant': 'acme' }))).toBe('custom:acme');
    expect(keyOf({ keyBy: 'user' }, facts('192.0.2.3', {}, { id: 0 }))).toBe('user:0');
  });

  it("keyBy 'user' refuses an id that prints as [object …] (every user would share one quota) and keeps ids with their own toString", () => {
    for (const id of [{}, { sub: 'ada' }, [], Object.create(null) as object, new Map()]) {
      expect(() => keyOf({ keyBy: 'user' }, facts('192.0.2.5', {}, { id }))).toThrow(InvalidCheckInputError);
    }
    expect(() => keyOf({ keyBy: 'user' }, facts('192.0.2.5', {}, { id: {} }))).toThrow(/req\.user\.id/);
    // A MongoDB ObjectId, a UUID class, a bigint: their own text is the key.
    class ObjectIdLike {
      constructor(readonly hex: string) {}
      toString(): string {
        return this.hex;
      }
    }
    expect(keyOf({ keyBy: 'user' }, facts('192.0.2.5', {}, { id: new ObjectIdLike('65a1f0c2') }))).toBe(
      'user:65a1f0c2',
    );
    expect(keyOf({ keyBy: 'user' }, facts('192.0.2.5', {}, { id: 42n }))).toBe('user:42');
  });
});

describe('Fastify refusal handler that sends nothing', () => {
  it('still keeps the refused request from the route: the default problem is sent', async () => {
    const app = Fastify();
    let routeRuns = 0;
    const limiter = createRateLimiter({
      limits: [{ limit: 1, windowMs: 60_000 }],
      clock: new ManualClock(start),
    });
    await app.register(fastifyRateLimit, {
      limiter,
      // Sets the status but forgets to send (or sends later, unawaited).
      handler: (_request, reply) => {
        reply.code(429);
      },
    });
    app.get('/r', async () => {
      routeRuns += 1;
      return 'route';
    });
    try {
      expect((await app.inject('/r')).statusCode).toBe(200);
      const refused = await app.inject('/r');
      expect(refused.statusCode).toBe(429);
      expect(refused.headers['content-type']).toContain('application/problem+json');
      expect(refused.json()).toMatchObject({ type: quotaExceededType, status: 429 });
      expect(routeRuns).toBe(1);
    } finally {
      await app.close();
    }
  });
});

describe('Fastify requestWasSuccessful that throws', () => {
  it('counts the request as failed, as the Express middleware does (skipFailedRequests gives it back)', async () => {
    const app = Fastify();
    const limiter = createRateLimiter({
      limits: [{ limit: 1, windowMs: 60_000 }],
      clock: new ManualClock(start),
    });
    await app.register(fastifyRateLimit, {
      limiter,
      skipFailedRequests: true,
      requestWasSuccessful: () => {
        throw new Error('cannot tell');
      },
    });
    app.get('/f', async (_request, reply) => reply.code(500).send('failed'));
    try {
      for (let index = 0; index < 3; index += 1) {
        expect((await app.inject('/f')).statusCode).toBe(500);
        // The refund runs in onResponse, after the reply: let it finish.
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      await app.close();
    }
  });
});

describe('Fastify plugin registered twice', () => {
  it('applies both limiters: a global one and a stricter one for one route (as @fastify/rate-limit allows)', async () => {
    const app = Fastify();
    const clock = new ManualClock(start);
    const everywhere = createRateLimiter({ limits: [{ name: 'global', limit: 3, windowMs: 60_000 }], clock });
    const strict = createRateLimiter({ limits: [{ name: 'auth', limit: 1, windowMs: 60_000 }], clock });
    await app.register(fastifyRateLimit, { limiter: everywhere });
    await app.register(fastifyRateLimit, { limiter: strict, skip: (facts) => facts.route !== '/auth' });
    app.get('/auth', async () => 'auth');
    app.get('/other', async () => 'other');
    try {
      expect((await app.inject('/auth')).statusCode).toBe(200);
      expect((await app.inject('/auth')).statusCode).toBe(429);
      // The global limiter's hook runs first: it counted both /auth requests.
      const other = await app.inject('/other');
      expect(other.statusCode).toBe(200);
      expect(other.headers.ratelimit).toBe('"global";r=0;t=40');
      expect((await app.inject('/other')).statusCode).toBe(429);
    } finally {
      await app.close();
    }
  });
});

describe('Fastify trustProxy misconfiguration', () => {
  async function warningsFrom(trustProxy: boolean | string, headers: Record<string, string>[]) {
    const app = Fastify({ trustProxy });
    const limiter = createRateLimiter({ limits: [{ limit: 100, windowMs: 60_000 }] });
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    try {
      await app.register(fastifyRateLimit, { limiter });
      app.get('/', async () => 'ok');
      for (const sent of headers) await app.inject({ url: '/', headers: sent });
      // process warnings are emitted on the next tick.
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('warning', onWarning);
      await app.close();
      await limiter.close();
    }
    return warnings.map((warning) => (warning as Error & { code?: string }).code);
  }

  it('warns once when X-Forwarded-For arrives but Fastify trusts no proxy (every client would share the proxy IP)', async () => {
    const codes = await warningsFrom(false, [
      {},
      { 'x-forwarded-for': '192.0.2.1' },
      { 'x-forwarded-for': '192.0.2.2' },
    ]);
    expect(codes).toEqual(['NOA_RATE_LIMIT_UNTRUSTED_FORWARDED_FOR']);
  });

  it('warns once when trustProxy is true (any client can pick its IP, and its quota)', async () => {
    expect(await warningsFrom(true, [{}, {}])).toEqual(['NOA_RATE_LIMIT_PERMISSIVE_TRUST_PROXY']);
  });

  it('stays quiet when trustProxy names the proxies', async () => {
    expect(await warningsFrom('127.0.0.1', [{ 'x-forwarded-for': '192.0.2.1' }])).toEqual([]);
  });
});

describe('perEndpoint and HEAD requests', () => {
  it('count HEAD with GET: both run the GET handler, so HEAD must not be a second quota', async () => {
    const clock = new ManualClock(start);
    const app = express();
    const limiter = createRateLimiter({ limits: [{ limit: 1, windowMs: 60_000 }], clock });
    app.get('/items/:id', expressRateLimit({ limiter, perEndpoint: true }), (_req, res) => {
      res.send('item');
    });
    const fastify = Fastify();
    await fastify.register(fastifyRateLimit, {
      limiter: createRateLimiter({ limits: [{ limit: 1, windowMs: 60_000 }], clock }),
      perEndpoint: true,
    });
    fastify.get('/items/:id', async () => 'item');
    await fastify.listen({ port: 0, host: '127.0.0.1' });
    const { base, close } = await serveExpress(app);
    const status = (url: string, method: string) =>
      fetch(url, { method }).then((response) => response.status);
    try {
      for (const url of [
        `${base}/items/1`,
        `http://127.0.0.1:${(fastify.server.address() as AddressInfo).port}/items/1`,
      ]) {
        expect(await status(url, 'GET')).toBe(200);
        expect(await status(url, 'HEAD')).toBe(429);
      }
    } finally {
      close();
      await fastify.close();
    }
  });
});

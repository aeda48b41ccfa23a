import type { AddressInfo } from 'node:net';
import { ManualClock } from '@noa/core';
import express from 'express';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRateLimiter, expressRateLimit, fastifyRateLimit, quotaExceededType } from '../src/index.js';

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
    expect(body).toMatchObject({ type: quotaExceededType, status: 429, violatedPolicies: ['burst'] });
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
  const app = Fastify({ trustProxy: true });
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

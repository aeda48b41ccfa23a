import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { fastifyRateLimit } from '../src/fastify.js';
import { createRateLimiter } from '../src/index.js';

// @fastify/rate-limit decorates the instance with `fastify.rateLimit(options?)`, a hook its users
// put where the plugin's own hook does not run: `setNotFoundHandler({ preHandler:
// fastify.rateLimit() }, …)`, or a route's `onRequest`/`preHandler` with options of its own.
describe('fastify.rateLimit(): the plugin as a hook of your own', () => {
  it('limits a route the plugin does not (global: false) with the plugin options or overrides', async () => {
    const app = Fastify();
    const limiter = createRateLimiter({
      prefix: 'main',
      limits: [{ name: 'main', limit: 2, windowMs: 60_000 }],
    });
    const strict = createRateLimiter({
      prefix: 'strict',
      limits: [{ name: 'strict', limit: 1, windowMs: 60_000 }],
    });
    await app.register(fastifyRateLimit, { limiter, global: false });
    app.get('/plain', async () => 'plain');
    app.get('/hooked', { preHandler: app.rateLimit() }, async () => 'hooked');
    app.get('/strict', { onRequest: app.rateLimit({ limiter: strict }) }, async () => 'strict');
    const statuses = async (url: string, times: number) => {
      const codes: number[] = [];
      for (let index = 0; index < times; index += 1) codes.push((await app.inject({ url })).statusCode);
      return codes.join(' ');
    };
    expect(await statuses('/plain', 3)).toBe('200 200 200');
    expect(await statuses('/hooked', 3)).toBe('200 200 429');
    const strictRefusal = await app.inject({ url: '/strict' });
    expect(strictRefusal.headers.ratelimit).toMatch(/^"strict";r=0;/);
    expect((await app.inject({ url: '/strict' })).statusCode).toBe(429);
    await app.close();
    await Promise.all([limiter.close(), strict.close()]);
  });

  it('in the not-found handler it counts a request once, though the global hook limits 404s too', async () => {
    const app = Fastify();
    const limiter = createRateLimiter({ limits: [{ name: 'api', limit: 2, windowMs: 60_000 }] });
    await app.register(fastifyRateLimit, { limiter });
    app.setNotFoundHandler({ preHandler: app.rateLimit() }, async (_request, reply) =>
      reply.code(404).send('nope'),
    );
    const first = await app.inject({ url: '/missing' });
    expect(first.statusCode).toBe(404);
    expect(first.headers.ratelimit).toMatch(/^"api";r=1;/);
    expect((await app.inject({ url: '/missing' })).statusCode).toBe(404);
    expect((await app.inject({ url: '/missing' })).statusCode).toBe(429);
    await app.close();
    await limiter.close();
  });

  it('bad overrides fail where the hook is made', async () => {
    const app = Fastify();
    const limiter = createRateLimiter({ limits: [{ limit: 2, windowMs: 60_000 }] });
    await app.register(fastifyRateLimit, { limiter });
    expect(() => app.rateLimit({ cost: -1 })).toThrow(/fastify\.rateLimit\(\) options: cost/);
    await app.close();
    await limiter.close();
  });
});

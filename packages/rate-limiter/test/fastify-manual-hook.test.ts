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

  // @fastify/rate-limit runs one check per request and registration, whatever the options (a
  // stacked stricter limit never counts); here equal options are one check, other options another.
  describe('a request is counted once per distinct options, however many hooks carry them', () => {
    const statuses = async (app: ReturnType<typeof Fastify>, url: string, times: number) => {
      const codes: number[] = [];
      for (let index = 0; index < times; index += 1) codes.push((await app.inject({ url })).statusCode);
      return codes.join(' ');
    };

    it('two fastify.rateLimit() hooks made with equal options (two objects) count a request once', async () => {
      const app = Fastify();
      const limiter = createRateLimiter({ limits: [{ limit: 100, windowMs: 60_000 }] });
      const strict = createRateLimiter({
        prefix: 'strict',
        limits: [{ name: 'strict', limit: 2, windowMs: 60_000 }],
      });
      await app.register(fastifyRateLimit, { limiter, global: false });
      app.get(
        '/twice',
        {
          onRequest: app.rateLimit({ limiter: strict, keyBy: 'ip' }),
          preHandler: app.rateLimit({ limiter: strict, keyBy: 'ip' }),
        },
        async () => 'ok',
      );
      const first = await app.inject({ url: '/twice' });
      expect(first.headers.ratelimit).toMatch(/^"strict";r=1;/);
      expect(await statuses(app, '/twice', 2)).toBe('200 429');
      await app.close();
      await Promise.all([limiter.close(), strict.close()]);
    });

    it("a manual hook equal to the route's config.rateLimit, or to the plugin's options, adds no count", async () => {
      const app = Fastify();
      const limiter = createRateLimiter({ limits: [{ name: 'api', limit: 2, windowMs: 60_000 }] });
      const strict = createRateLimiter({
        prefix: 'strict',
        limits: [{ name: 'strict', limit: 2, windowMs: 60_000 }],
      });
      await app.register(fastifyRateLimit, { limiter, headers: { draft: 'draft-7' } });
      app.get(
        '/route',
        { config: { rateLimit: { limiter: strict } }, preHandler: app.rateLimit({ limiter: strict }) },
        async () => 'ok',
      );
      app.get(
        '/plugin',
        { preHandler: app.rateLimit({ limiter, headers: { draft: 'draft-7' } }) },
        async () => 'ok',
      );
      expect(await statuses(app, '/route', 3)).toBe('200 200 429');
      expect(await statuses(app, '/plugin', 3)).toBe('200 200 429');
      await app.close();
      await Promise.all([limiter.close(), strict.close()]);
    });

    it('other options (another limiter, another key) are another check, counted on their own', async () => {
      const app = Fastify();
      const limiter = createRateLimiter({ limits: [{ name: 'api', limit: 10, windowMs: 60_000 }] });
      const strict = createRateLimiter({
        prefix: 'strict',
        limits: [{ name: 'strict', limit: 2, windowMs: 60_000 }],
      });
      await app.register(fastifyRateLimit, { limiter });
      app.get('/stacked', { preHandler: app.rateLimit({ limiter: strict }) }, async () => 'ok');
      app.get(
        '/two-keys',
        { preHandler: app.rateLimit({ keyBy: () => 'everyone' }), config: { rateLimit: false } },
        async () => 'ok',
      );
      // The plugin's options again after the stricter limiter's: still the one check.
      app.get(
        '/sandwich',
        {
          preHandler: [
            app.rateLimit({ limiter: strict, keyBy: () => 'sandwich' }),
            app.rateLimit({ limiter }),
          ],
        },
        async () => 'ok',
      );
      expect(await statuses(app, '/stacked', 3)).toBe('200 200 429');
      expect((await limiter.peek('ip:127.0.0.1')).remaining).toBe(7);
      expect(await statuses(app, '/two-keys', 1)).toBe('200');
      expect((await limiter.peek('custom:everyone')).remaining).toBe(9);
      expect(await statuses(app, '/sandwich', 1)).toBe('200');
      expect((await limiter.peek('ip:127.0.0.1')).remaining).toBe(6);
      await app.close();
      await Promise.all([limiter.close(), strict.close()]);
    });
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

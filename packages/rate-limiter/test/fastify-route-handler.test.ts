import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { fastifyRateLimit } from '../src/fastify.js';
import { createRateLimiter } from '../src/index.js';

// @fastify/rate-limit takes errorResponseBuilder per route (`config.rateLimit`): an API whose
// routes answer refusals in different shapes migrates only if a route can name its own handler.
describe('Fastify per-route handler', () => {
  it("a route's config.rateLimit.handler answers that route's refusals; other routes keep the plugin's", async () => {
    const app = Fastify();
    const limiter = createRateLimiter({ limits: [{ name: 'api', limit: 1, windowMs: 60_000 }] });
    await app.register(fastifyRateLimit, {
      limiter,
      perEndpoint: true,
      handler: (_request, reply) => reply.code(429).send({ from: 'plugin' }),
    });
    app.get(
      '/legacy',
      {
        config: {
          rateLimit: {
            handler: (_request, reply, result) =>
              reply.code(429).send({ from: 'route', retryAfterMs: result.retryAfterMs > 0 }),
          },
        },
      },
      async () => 'legacy',
    );
    app.get('/modern', async () => 'modern');
    for (const url of ['/legacy', '/modern']) expect((await app.inject({ url })).statusCode).toBe(200);
    const legacy = await app.inject({ url: '/legacy' });
    expect(legacy.statusCode).toBe(429);
    expect(legacy.json()).toEqual({ from: 'route', retryAfterMs: true });
    expect(legacy.headers['retry-after']).toBeDefined();
    expect((await app.inject({ url: '/modern' })).json()).toEqual({ from: 'plugin' });
    await app.close();
    await limiter.close();
  });

  it('a route handler that sends nothing gets the default refusal; a non-function is refused at start-up', async () => {
    const app = Fastify();
    const limiter = createRateLimiter({ limits: [{ name: 'api', limit: 1, windowMs: 60_000 }] });
    await app.register(fastifyRateLimit, { limiter });
    const seen: string[] = [];
    app.get(
      '/logged',
      { config: { rateLimit: { handler: (request) => void seen.push(request.url) } } },
      async () => 'ok',
    );
    expect(() =>
      app.get('/bad', { config: { rateLimit: { handler: 'nope' as never } } }, async () => 'bad'),
    ).toThrow(/config\.rateLimit options: handler: expected a function/);
    await app.inject({ url: '/logged' });
    const refused = await app.inject({ url: '/logged' });
    expect(refused.statusCode).toBe(429);
    expect(refused.headers['content-type']).toContain('application/problem+json');
    expect(seen).toEqual(['/logged']);
    await app.close();
    await limiter.close();
  });
});

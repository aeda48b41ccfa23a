import Fastify, { type FastifyPluginAsync, type FastifyReply, type FastifyRequest } from 'fastify';
import fastifyPlugin from 'fastify-plugin';
import { describe, expect, it } from 'vitest';
import { fastifyRateLimit } from '../src/fastify.js';
import { fastifyRateLimit as fastifyRateLimitOwnNames } from '../src/fastify-own-names.js';
import { createRateLimiter } from '../src/index.js';

/**
 * A stand-in for @fastify/rate-limit (not installed here) with the names it claims at run time:
 * it decorates `fastify.rateLimit` unless some plugin has, and refuses a route's requests beyond
 * the `max` of its `config.rateLimit`.
 */
const otherRateLimit: FastifyPluginAsync = fastifyPlugin(
  async (fastify) => {
    const seen = new Map<string, number>();
    const limit = async (request: FastifyRequest, reply: FastifyReply, max: number) => {
      const key = request.url;
      const count = (seen.get(key) ?? 0) + 1;
      seen.set(key, count);
      if (count > max) return reply.code(429).send({ refusedBy: 'other' });
      return undefined;
    };
    // A plain string: this program's FastifyInstance types `rateLimit` as @noa/rate-limiter/fastify's.
    const decorator: string = 'rateLimit';
    if (!fastify.hasDecorator(decorator))
      fastify.decorate(
        decorator,
        (options: { max: number }) => (request: FastifyRequest, reply: FastifyReply) =>
          limit(request, reply, options.max),
      );
    fastify.addHook('onRequest', async (request, reply) => {
      const config = (request.routeOptions.config as { rateLimit?: { max: number } | false }).rateLimit;
      if (config) return limit(request, reply, config.max);
      return undefined;
    });
  },
  { name: 'other-rate-limit' },
);

const statuses = async (app: ReturnType<typeof Fastify>, url: string, times: number) => {
  const codes: number[] = [];
  for (let index = 0; index < times; index += 1) codes.push((await app.inject({ url })).statusCode);
  return codes.join(' ');
};

// An app migrating from @fastify/rate-limit runs both plugins while its routes move over: routes
// not moved keep `config.rateLimit` and `fastify.rateLimit()`, which are @fastify/rate-limit's.
describe('@noa/rate-limiter/fastify-own-names beside a plugin that claims rateLimit', () => {
  it.each([
    ['registered first', true],
    ['registered second', false],
  ])(
    'reads config.noaRateLimit, decorates fastify.noaRateLimit, leaves the rateLimit names alone (%s)',
    async (_order, oursFirst) => {
      const app = Fastify();
      const limiter = createRateLimiter({ limits: [{ name: 'api', limit: 2, windowMs: 60_000 }] });
      const strict = createRateLimiter({
        prefix: 'strict',
        limits: [{ name: 'strict', limit: 1, windowMs: 60_000 }],
      });
      // Ours first, the other plugin still gets `fastify.rateLimit`.
      if (oursFirst) await app.register(fastifyRateLimitOwnNames, { limiter, global: false });
      await app.register(otherRateLimit);
      if (!oursFirst) await app.register(fastifyRateLimitOwnNames, { limiter, global: false });
      app.get('/old', { config: { rateLimit: { max: 1 } } as object }, async () => 'old');
      // Typed as the other plugin types it: this program also has @noa/rate-limiter/fastify's `rateLimit`.
      const other = app as unknown as {
        rateLimit(options: { max: number }): ReturnType<typeof app.noaRateLimit>;
      };
      app.get('/old-hook', { onRequest: other.rateLimit({ max: 1 }) }, async () => 'old');
      app.get('/new', { config: { noaRateLimit: {} } }, async () => 'new');
      app.get('/new-hook', { onRequest: app.noaRateLimit({ limiter: strict }) }, async () => 'new');
      await app.ready();

      expect(await statuses(app, '/old', 2)).toBe('200 429');
      expect(await statuses(app, '/old-hook', 2)).toBe('200 429');
      const old = await app.inject({ url: '/old' });
      expect(old.json()).toEqual({ refusedBy: 'other' });
      expect(old.headers.ratelimit).toBeUndefined();
      expect(await statuses(app, '/new', 3)).toBe('200 200 429');
      const refused = await app.inject({ url: '/new-hook' });
      expect(refused.headers.ratelimit).toMatch(/^"strict";r=0;/);
      expect(await statuses(app, '/new-hook', 1)).toBe('429');
      expect((await app.inject({ url: '/new-hook' })).headers['content-type']).toMatch(/problem\+json/);
      await app.close();
      await Promise.all([limiter.close(), strict.close()]);
    },
  );

  it('sets request.rateLimit and exempts a route with config.noaRateLimit: false', async () => {
    const app = Fastify();
    const limiter = createRateLimiter({ limits: [{ limit: 1, windowMs: 60_000 }] });
    await app.register(fastifyRateLimitOwnNames, { limiter });
    app.get('/', async (request) => ({ remaining: request.rateLimit?.remaining }));
    app.get('/health', { config: { noaRateLimit: false } }, async () => 'ok');
    expect((await app.inject({ url: '/' })).json()).toEqual({ remaining: 0 });
    expect(await statuses(app, '/', 1)).toBe('429');
    expect(await statuses(app, '/health', 2)).toBe('200 200');
    await app.close();
    await limiter.close();
  });

  // Why the second entry: the plugin of `@noa/rate-limiter/fastify` takes `config.rateLimit` as
  // its own options, so @fastify/rate-limit's there are a ConfigError at the route's registration.
  it("the plugin of @noa/rate-limiter/fastify refuses the other plugin's config.rateLimit", async () => {
    const app = Fastify();
    const limiter = createRateLimiter({ limits: [{ limit: 1, windowMs: 60_000 }] });
    await app.register(fastifyRateLimit, { limiter, global: false });
    await app.register(otherRateLimit);
    expect(() => app.get('/old', { config: { rateLimit: { max: 1 } } as object }, async () => 'old')).toThrow(
      /config\.rateLimit/,
    );
    expect(app.hasDecorator('noaRateLimit')).toBe(false);
    await app.close();
    await limiter.close();
  });
});

import { ClosedError } from '@noa/core';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { describe, expect, it, vi } from 'vitest';
import { fastifyRateLimit } from '../src/fastify.js';
import { createRateLimiter, type RateLimiter } from '../src/index.js';

// On a memory store the Fastify plugin decides in the request's own tick (checkSync) and calls
// its hook's `done()` there: the route runs without a promise turn of its own. What goes
// asynchronous (a request function returning a promise, skip, a handler's promise) still goes the
// asynchronous way, each function called once, and an error reaches the error handler once.

type Marked = FastifyRequest & { sameTick?: () => boolean };

/**
 * An app whose first onRequest hook opens a "tick": a microtask closes it. `sameTick` read in the
 * route (or in onSend for a refusal) is true only if nothing on the way waited for a promise.
 */
async function appWith(
  limiter: RateLimiter,
  options: Record<string, unknown> = {},
): Promise<{ app: FastifyInstance; ticks: boolean[]; errors: unknown[] }> {
  const app = Fastify();
  const ticks: boolean[] = [];
  const errors: unknown[] = [];
  app.addHook('onRequest', (request: Marked, _reply, done) => {
    let open = true;
    queueMicrotask(() => {
      open = false;
    });
    request.sameTick = () => open;
    done();
  });
  await app.register(fastifyRateLimit, { limiter, ...options });
  app.addHook('onSend', (request: Marked, reply, payload, done) => {
    if (reply.statusCode >= 400) ticks.push(request.sameTick?.() ?? false);
    done(null, payload);
  });
  app.setErrorHandler((error, _request, reply) => {
    errors.push(error);
    return reply.code(500).send({ failed: true });
  });
  app.get('/', (request: Marked, reply) => {
    ticks.push(request.sameTick?.() ?? false);
    reply.send('ok');
  });
  return { app, ticks, errors };
}

const limits = [{ limit: 1, windowMs: 60_000 }];

describe('fastifyRateLimit on a memory store', () => {
  it('runs the route in the same tick as the check, with the headers and request.rateLimit set', async () => {
    const limiter = createRateLimiter({ limits: [{ limit: 2, windowMs: 60_000 }] });
    const { app, ticks } = await appWith(limiter);
    let remaining: number | undefined;
    app.addHook('preHandler', (request, _reply, done) => {
      remaining = request.rateLimit?.remaining;
      done();
    });
    const response = await app.inject({ url: '/' });
    expect(response.statusCode).toBe(200);
    expect(response.headers.ratelimit).toBeDefined();
    expect(remaining).toBe(1);
    expect(ticks).toEqual([true]);
    await app.close();
    await limiter.close();
  });

  it("checks in the same tick under hook: 'preHandler' too", async () => {
    const limiter = createRateLimiter({ limits });
    const { app, ticks } = await appWith(limiter, { hook: 'preHandler' });
    expect((await app.inject({ url: '/' })).statusCode).toBe(200);
    expect((await app.inject({ url: '/' })).statusCode).toBe(429);
    expect(ticks).toEqual([true, true]);
    await app.close();
    await limiter.close();
  });

  it('refuses in the same tick too, with the default problem', async () => {
    const limiter = createRateLimiter({ limits });
    const { app, ticks } = await appWith(limiter);
    await app.inject({ url: '/' });
    const refused = await app.inject({ url: '/' });
    expect(refused.statusCode).toBe(429);
    expect(refused.headers['content-type']).toContain('application/problem+json');
    expect(refused.headers['retry-after']).toBeDefined();
    expect(ticks).toEqual([true, true]);
    await app.close();
    await limiter.close();
  });

  it('a handler that sends synchronously answers in the same tick; one that rejects reaches the error handler once', async () => {
    const limiter = createRateLimiter({ limits });
    const sync = await appWith(limiter, {
      handler: (_request: FastifyRequest, reply: { code(status: number): { send(body: unknown): void } }) => {
        reply.code(429).send({ from: 'handler' });
      },
    });
    await sync.app.inject({ url: '/' });
    const refused = await sync.app.inject({ url: '/' });
    expect(refused.json()).toEqual({ from: 'handler' });
    expect(sync.ticks).toEqual([true, true]);
    await sync.app.close();

    const failure = new Error('handler failed');
    const other = createRateLimiter({ limits });
    const rejecting = await appWith(other, {
      handler: async () => {
        throw failure;
      },
    });
    await rejecting.app.inject({ url: '/' });
    const failed = await rejecting.app.inject({ url: '/' });
    expect(failed.statusCode).toBe(500);
    expect(rejecting.errors).toEqual([failure]);
    await rejecting.app.close();
    await limiter.close();
    await other.close();
  });

  it('waits for an async keyBy and for skip, calling each once per request', async () => {
    const limiter = createRateLimiter({ limits: [{ limit: 5, windowMs: 60_000 }] });
    const keyBy = vi.fn(async () => 'tenant-a');
    const skip = vi.fn(() => false);
    const keyed = await appWith(limiter, { keyBy });
    const keyedResponse = await keyed.app.inject({ url: '/' });
    expect(keyedResponse.statusCode).toBe(200);
    expect(keyBy).toHaveBeenCalledTimes(1);
    expect(keyed.ticks).toEqual([false]);
    await keyed.app.close();

    const skipping = await appWith(limiter, { skip });
    expect((await skipping.app.inject({ url: '/' })).statusCode).toBe(200);
    expect(skip).toHaveBeenCalledTimes(1);
    await skipping.app.close();
    await limiter.close();
  });

  it('passes a throwing keyBy and a closed limiter to the error handler, once', async () => {
    const failure = new Error('no tenant');
    const limiter = createRateLimiter({ limits });
    const throwing = await appWith(limiter, {
      keyBy: () => {
        throw failure;
      },
    });
    expect((await throwing.app.inject({ url: '/' })).statusCode).toBe(500);
    expect(throwing.errors).toEqual([failure]);
    await throwing.app.close();

    const closing = createRateLimiter({ limits });
    const closed = await appWith(closing);
    await closing.close();
    expect((await closed.app.inject({ url: '/' })).statusCode).toBe(500);
    expect(closed.errors).toHaveLength(1);
    expect(closed.errors[0]).toBeInstanceOf(ClosedError);
    await closed.app.close();
    await limiter.close();
  });

  it('gives back a failed request under skipFailedRequests on the same-tick path', async () => {
    const limiter = createRateLimiter({ limits });
    const app = Fastify();
    await app.register(fastifyRateLimit, { limiter, skipFailedRequests: true });
    app.get('/fail', (_request, reply) => {
      reply.code(500).send('no');
    });
    for (let attempt = 0; attempt < 3; attempt++)
      await vi.waitFor(async () => expect((await app.inject({ url: '/fail' })).statusCode).toBe(500));
    await app.close();
    await limiter.close();
  });
});

import type { IncomingMessage, ServerResponse } from 'node:http';
import { ClosedError } from '@noa/core';
import { describe, expect, it, vi } from 'vitest';
import { expressRateLimit } from '../src/express.js';
import { createRateLimiter } from '../src/index.js';

// On a memory store the Express middleware decides in the request's own tick (checkSync): the
// route runs without the promise turns of check(). What goes asynchronous (a request function
// returning a promise, a handler) still goes the asynchronous way, each function called once.

function request(ip = '192.0.2.1'): IncomingMessage {
  return {
    headers: {},
    method: 'GET',
    ip,
    url: '/',
    socket: {},
    app: { get: () => false },
  } as unknown as IncomingMessage;
}

function response(): ServerResponse & { headers: Record<string, unknown>; body?: string } {
  const headers: Record<string, unknown> = {};
  const res = {
    headers,
    headersSent: false,
    statusCode: 200,
    closed: false,
    writableFinished: false,
    setHeader: (name: string, value: unknown) => {
      headers[name.toLowerCase()] = value;
    },
    getHeader: (name: string) => headers[name.toLowerCase()],
    once: () => res,
    end: (body?: string) => {
      res.body = body;
      res.headersSent = true;
    },
    body: undefined as string | undefined,
  };
  return res as unknown as ServerResponse & { headers: Record<string, unknown>; body?: string };
}

const limits = [{ limit: 2, windowMs: 60_000 }];

describe('expressRateLimit on a memory store', () => {
  it('calls next() before it returns, with the headers and req.rateLimit set', () => {
    const middleware = expressRateLimit({ limiter: createRateLimiter({ limits }) });
    const req = request();
    const res = response();
    const next = vi.fn();
    middleware(req, res, next);
    expect(next).toHaveBeenCalledTimes(1);
    expect(next).toHaveBeenCalledWith();
    expect((req as { rateLimit?: { remaining: number } }).rateLimit?.remaining).toBe(1);
    expect(res.headers.ratelimit).toBeDefined();
  });

  it('refuses in the same tick too, without next(), and passes a rejecting handler to next(error)', async () => {
    const failure = new Error('handler failed');
    const middleware = expressRateLimit({
      limiter: createRateLimiter({ limits: [{ limit: 1, windowMs: 60_000 }] }),
      handler: async () => {
        throw failure;
      },
    });
    const next = vi.fn();
    middleware(request(), response(), next);
    expect(next).toHaveBeenCalledWith();
    const refusedNext = vi.fn();
    const res = response();
    middleware(request(), res, refusedNext);
    expect(res.headers['retry-after']).toBeDefined();
    await vi.waitFor(() => expect(refusedNext).toHaveBeenCalledWith(failure));
    expect(refusedNext).toHaveBeenCalledTimes(1);
  });

  it('sends the default problem in the same tick', () => {
    const middleware = expressRateLimit({
      limiter: createRateLimiter({ limits: [{ limit: 1, windowMs: 60_000 }] }),
    });
    middleware(request(), response(), vi.fn());
    const res = response();
    const next = vi.fn();
    middleware(request(), res, next);
    expect(res.statusCode).toBe(429);
    expect(JSON.parse(res.body!)).toMatchObject({ status: 429 });
    expect(next).not.toHaveBeenCalled();
  });

  it('waits for an async keyBy, calling it once per request', async () => {
    const keyBy = vi.fn(async () => 'tenant-a');
    const middleware = expressRateLimit({ limiter: createRateLimiter({ limits }), keyBy });
    const req = request();
    const next = vi.fn();
    middleware(req, response(), next);
    expect(next).not.toHaveBeenCalled();
    await vi.waitFor(() => expect(next).toHaveBeenCalledWith());
    expect(keyBy).toHaveBeenCalledTimes(1);
    expect((req as { rateLimit?: { key: string } }).rateLimit?.key).toBe('custom:tenant-a');
  });

  it('passes a throwing keyBy and a closed limiter to next(error), once', async () => {
    const failure = new Error('no tenant');
    const throwing = expressRateLimit({
      limiter: createRateLimiter({ limits }),
      keyBy: () => {
        throw failure;
      },
    });
    const next = vi.fn();
    throwing(request(), response(), next);
    expect(next).toHaveBeenCalledTimes(1);
    expect(next).toHaveBeenCalledWith(failure);

    const limiter = createRateLimiter({ limits });
    const closed = expressRateLimit({ limiter });
    await limiter.close();
    const closedNext = vi.fn();
    closed(request(), response(), closedNext);
    expect(closedNext).toHaveBeenCalledTimes(1);
    expect(closedNext.mock.calls[0]![0]).toBeInstanceOf(ClosedError);
  });

  it('takes the asynchronous way with skip', async () => {
    const middleware = expressRateLimit({ limiter: createRateLimiter({ limits }), skip: () => false });
    const next = vi.fn();
    middleware(request(), response(), next);
    expect(next).not.toHaveBeenCalled();
    await vi.waitFor(() => expect(next).toHaveBeenCalledWith());
  });
});

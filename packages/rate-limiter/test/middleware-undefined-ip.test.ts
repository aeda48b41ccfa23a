import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '@noa/core';
import express from 'express';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { expressRateLimit } from '../src/express.js';
import { fastifyRateLimit } from '../src/fastify.js';
import { createRateLimiter, type RateLimiter } from '../src/index.js';

// A server listening on a Unix socket (behind nginx or a sidecar) sees no client address:
// `req.ip` is undefined, so every client of `keyBy: 'ip'` falls back to the one key `ip:unknown`,
// one quota for all of them (express-rate-limit/express-slow-down#9, "the limit is applying to all
// computers, because everyone's req.ip is undefined"; express-rate-limit warns with
// ERR_ERL_UNDEFINED_IP_ADDRESS). The key stays (refusing such requests would break the apps that
// limit by another key and use the IP only as a fallback), but a process warning says so, once
// per middleware (as the trust-proxy warnings).

const start = 1_700_000_000_000;

/** GET / over the Unix socket at `path`; resolves with the status and the `x-key` header. */
function getOverSocket(path: string): Promise<{ status: number; key: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ socketPath: path, path: '/' }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, key: res.headers['x-key'] as string }));
    });
    req.on('error', reject);
    req.end();
  });
}

const frameworks = [
  {
    name: 'Express',
    async serve(limiter: RateLimiter, path: string): Promise<() => Promise<void>> {
      const app = express();
      app.get('/', expressRateLimit({ limiter }), (req, res) => {
        res.setHeader('x-key', req.rateLimit?.key ?? '');
        res.send('ok');
      });
      const server = app.listen(path);
      await new Promise((resolve) => server.once('listening', resolve));
      return () => new Promise((resolve) => server.close(() => resolve()));
    },
  },
  {
    name: 'Fastify',
    async serve(limiter: RateLimiter, path: string): Promise<() => Promise<void>> {
      const app = Fastify();
      await app.register(fastifyRateLimit, { limiter });
      app.get('/', async (request, reply) => {
        reply.header('x-key', request.rateLimit?.key ?? '');
        return 'ok';
      });
      await app.listen({ path });
      return () => app.close();
    },
  },
];

describe('a request without a client address (a server on a Unix socket)', () => {
  it.each(frameworks)(
    '$name: is keyed ip:unknown, with one NOA_RATE_LIMIT_UNDEFINED_IP warning',
    async ({ name, serve }) => {
      const path = join(tmpdir(), `noa-rl-${process.pid}-${name}.sock`);
      const limiter = createRateLimiter({
        limits: [{ limit: 100, windowMs: 60_000 }],
        clock: new ManualClock(start),
      });
      const close = await serve(limiter, path);
      const warnings: (Error & { code?: string })[] = [];
      const onWarning = (warning: Error) => warnings.push(warning);
      process.on('warning', onWarning);
      try {
        const first = await getOverSocket(path);
        const second = await getOverSocket(path);
        expect([first, second]).toEqual([
          { status: 200, key: 'ip:unknown' },
          { status: 200, key: 'ip:unknown' },
        ]);
        // process warnings are emitted on the next tick.
        await new Promise((resolve) => setImmediate(resolve));
      } finally {
        process.off('warning', onWarning);
        await close();
        await limiter.close();
      }
      expect(warnings.map((warning) => warning.code)).toEqual(['NOA_RATE_LIMIT_UNDEFINED_IP']);
    },
  );
});

// One route, GET /, behind the rate-limit middleware of Express or Fastify, on a free port: the
// apps the header tests send real HTTP requests to.
import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify from 'fastify';
import { expressRateLimit } from '../src/express.js';
import { fastifyRateLimit } from '../src/fastify.js';
import type { RateLimiter } from '../src/index.js';

export interface App {
  /** `http://127.0.0.1:<port>` */
  base: string;
  close: () => Promise<void>;
}

type ExpressOptions = Omit<Parameters<typeof expressRateLimit>[0], 'limiter'>;
type FastifyOptions = Omit<Parameters<typeof fastifyRateLimit>[1], 'limiter'>;

/** An Express app answering `ok` on GET / behind `expressRateLimit({ limiter, ...options })`. */
export async function expressApp(limiter: RateLimiter, options: ExpressOptions = {}): Promise<App> {
  const app = express();
  app.get('/', expressRateLimit({ limiter, ...options }), (_req, res) => {
    res.send('ok');
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** A Fastify app answering `ok` on GET / with the `fastifyRateLimit` plugin over `limiter`. */
export async function fastifyApp(limiter: RateLimiter, options: FastifyOptions = {}): Promise<App> {
  const app = Fastify();
  await app.register(fastifyRateLimit, { limiter, ...options });
  app.get('/', async () => 'ok');
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { base: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, close: () => app.close() };
}

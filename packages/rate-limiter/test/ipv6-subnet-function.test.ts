import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { type ExpressRateLimitOptions, expressRateLimit } from '../src/express.js';
import { fastifyRateLimit } from '../src/fastify.js';
import { createRateLimiter, InvalidCheckInputError } from '../src/index.js';
import type { RequestFacts } from '../src/middleware/options.js';

// express-rate-limit takes `ipv6Subnet` as a function of the request (a mobile carrier hands each
// client a /64, a home ISP a /56): so does the middleware, sync or async, called only when the key
// is the client's IP.

const closers: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const close of closers) await close();
});

/** /48 for clients that say they are on the `wide` network, else /64. */
const bySubnetHeader = (facts: RequestFacts): number | false =>
  facts.headers['x-net'] === 'wide' ? 48 : facts.headers['x-net'] === 'each' ? false : 64;

type Subnet = number | false | ((facts: RequestFacts) => number | false | Promise<number | false>);

async function expressKeyOf(ipv6Subnet: Subnet, extra: Partial<ExpressRateLimitOptions> = {}) {
  const app = express();
  app.set('trust proxy', 'loopback');
  const limiter = createRateLimiter({ limits: [{ limit: 100, windowMs: 60_000 }] });
  app.get('/', expressRateLimit({ limiter, ipv6Subnet, ...extra }), (req, res) => {
    res.send(req.rateLimit?.key);
  });
  app.use((error: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    res.status(500).send(error instanceof InvalidCheckInputError ? `${error.code} ${error.field}` : 'other');
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  closers.push(() => new Promise((resolve) => server.close(() => resolve())));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return async (ip: string, headers: Record<string, string> = {}) => {
    const response = await fetch(base, { headers: { 'x-forwarded-for': ip, ...headers } });
    return `${response.status} ${await response.text()}`;
  };
}

async function fastifyKeyOf(ipv6Subnet: Subnet) {
  const app = Fastify();
  const limiter = createRateLimiter({ limits: [{ limit: 100, windowMs: 60_000 }] });
  await app.register(fastifyRateLimit, { limiter, ipv6Subnet });
  app.get('/', async (request) => request.rateLimit?.key);
  app.setErrorHandler(async (error, _request, reply) =>
    reply.code(500).send(error instanceof InvalidCheckInputError ? `${error.code} ${error.field}` : 'other'),
  );
  closers.push(() => app.close());
  return async (ip: string, headers: Record<string, string> = {}) => {
    const response = await app.inject({ url: '/', remoteAddress: ip, headers });
    return `${response.statusCode} ${response.body}`;
  };
}

for (const [name, keyOf] of [
  ['Express', expressKeyOf],
  ['Fastify', fastifyKeyOf],
] as const)
  describe(`${name}: ipv6Subnet as a function of the request`, () => {
    it('keys each IPv6 client by the prefix the function returns for its request', async () => {
      const get = await keyOf(bySubnetHeader);
      expect(await get('2001:db8:1:2::10')).toBe('200 ip:2001:db8:1:2::/64');
      expect(await get('2001:db8:1:2::10', { 'x-net': 'wide' })).toBe('200 ip:2001:db8:1::/48');
      expect(await get('2001:db8:1:2::10', { 'x-net': 'each' })).toBe('200 ip:2001:db8:1:2::10');
      // IPv4 clients are keyed by their address whatever the function says.
      expect(await get('203.0.113.7', { 'x-net': 'wide' })).toBe('200 ip:203.0.113.7');
    });

    it('may return a promise', async () => {
      const get = await keyOf(async (facts) => bySubnetHeader(facts));
      expect(await get('2001:db8:1:2::10', { 'x-net': 'wide' })).toBe('200 ip:2001:db8:1::/48');
    });

    it('fails the request when it returns something that is not a prefix length or false', async () => {
      for (const bad of [0, 129, 56.5, '56', true, undefined]) {
        const get = await keyOf((() => bad) as unknown as Subnet);
        expect(await get('2001:db8:1:2::10')).toBe('500 NOA_RATE_LIMIT_INVALID_INPUT ipv6Subnet');
      }
    });
  });

describe('ipv6Subnet function', () => {
  it('is not called when the key is not the IP', async () => {
    let calls = 0;
    const get = await expressKeyOf(
      () => {
        calls += 1;
        return 64;
      },
      { keyBy: () => 'tenant-1' },
    );
    expect(await get('2001:db8:1:2::10')).toBe('200 custom:tenant-1');
    expect(calls).toBe(0);
  });

  it('is refused at construction when it is neither a number, false nor a function', () => {
    const limiter = createRateLimiter({ limits: [{ limit: 1, windowMs: 1_000 }] });
    // @ts-expect-error: a string is no prefix length
    expect(() => expressRateLimit({ limiter, ipv6Subnet: '64' })).toThrow(/ipv6Subnet/);
  });
});

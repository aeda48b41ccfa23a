import type { AddressInfo } from 'node:net';
import { awayFromWindowEdge } from '@noa/testkit';
import express from 'express';
import fc from 'fast-check';
import Fastify from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { expressRateLimit } from '../src/express.js';
import { fastifyRateLimit } from '../src/fastify.js';
import {
  createRateLimiter,
  customKeyOf,
  maxCustomKeyValueLength,
  type RateLimiter,
  type RateLimitResult,
  type RequestFacts,
} from '../src/index.js';
import { checkInputOf, middlewareOptionsSchema } from '../src/middleware/options.js';

// The memory store's fixed windows run on the real clock (Date.now), aligned to the minute: a
// test that expects a 429 from the window its first request opened starts none within 2 s of its end.
beforeEach(async () => {
  await awayFromWindowEdge(60_000, 2_000);
});

// A keyBy function reads what the client sends (a header, here): its value must not be able to
// name a built-in key, or a client sending `ip:203.0.113.5` spends that IP's quota (and, while the
// store is down, its fallback share), and one sending `user:42` that user's.

const clientId = (facts: RequestFacts) => facts.headers['x-client-id'] as string | undefined;

interface App {
  base: string;
  limiter: RateLimiter;
  close: () => Promise<void>;
}

async function expressApp(): Promise<App> {
  const limiter = createRateLimiter({ limits: [{ limit: 1, windowMs: 60_000 }] });
  const app = express();
  app.set('trust proxy', 'loopback');
  app.get('/', expressRateLimit({ limiter, keyBy: clientId }), (req, res) => {
    res.json({ key: (req as { rateLimit?: RateLimitResult }).rateLimit?.key });
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    limiter,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

async function fastifyApp(): Promise<App> {
  const limiter = createRateLimiter({ limits: [{ limit: 1, windowMs: 60_000 }] });
  const app = Fastify({ trustProxy: '127.0.0.1' });
  await app.register(fastifyRateLimit, { limiter, keyBy: clientId });
  app.get('/', async (request) => ({ key: request.rateLimit?.key }));
  await app.listen({ port: 0, host: '127.0.0.1' });
  return {
    base: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`,
    limiter,
    close: () => app.close(),
  };
}

describe.each([
  { name: 'Express', start: expressApp },
  { name: 'Fastify', start: fastifyApp },
])('$name keyBy function of a client-chosen value', ({ start }) => {
  let app: App;
  beforeAll(async () => {
    app = await start();
  });
  afterAll(() => app.close());

  const send = async (ip: string, id?: string) => {
    const headers: Record<string, string> = { 'x-forwarded-for': ip };
    if (id !== undefined) headers['x-client-id'] = id;
    const response = await fetch(app.base, { headers });
    const body = response.status === 200 ? ((await response.json()) as { key: string }) : undefined;
    return { status: response.status, key: body?.key };
  };

  it("cannot spend an IP's quota by naming its key", async () => {
    // A client without the header is keyed by its IP, `ip:203.0.113.5`.
    expect((await send('192.0.2.9', 'ip:203.0.113.5')).status).toBe(200);
    expect((await send('203.0.113.5')).status).toBe(200);
    // And the other way round: the IP's client has not spent the custom key's quota either.
    expect((await send('203.0.113.6')).status).toBe(200);
    expect((await send('192.0.2.10', 'ip:203.0.113.6')).status).toBe(200);
  });

  it("cannot spend a user's quota by naming its key", async () => {
    const first = await send('192.0.2.11', 'user:42');
    expect(first.status).toBe(200);
    const result = await app.limiter.check({ key: 'user:42' });
    expect(result.allowed).toBe(true);
  });

  it('keys a value a client made long by its digest, one quota per value', async () => {
    // 10 kB (Node's default header limit is 16 kB in all): kept whole it was a 10 kB key.
    const long = 'a'.repeat(10_000);
    const first = await send('192.0.2.20', long);
    expect(first.status).toBe(200);
    expect(first.key).toBe(customKeyOf(long));
    expect(first.key).toMatch(/^custom#[A-Za-z0-9_-]{43}$/);
    // The same value from another IP: the same quota; another long value: its own.
    expect((await send('192.0.2.21', long)).status).toBe(429);
    const other = await send('192.0.2.21', `${long}b`);
    expect(other.status).toBe(200);
    expect(other.key).not.toBe(first.key);
    // At the bound a value is kept whole, one past it is digested.
    const atBound = 'c'.repeat(maxCustomKeyValueLength);
    expect((await send('192.0.2.22', atBound)).key).toBe(`custom:${atBound}`);
    expect((await send('192.0.2.22', `${atBound}c`)).key).toMatch(/^custom#/);
    // customKeyOf(value) resets it, as result.key does.
    await app.limiter.reset(customKeyOf(long));
    expect((await send('192.0.2.23', long)).status).toBe(200);
  });

  it('keeps one quota per value, and result.key resets it', async () => {
    const first = await send('192.0.2.12', 'tenant-a');
    expect(first.status).toBe(200);
    // Another IP, the same value: the same quota.
    expect((await send('192.0.2.13', 'tenant-a')).status).toBe(429);
    await app.limiter.reset(first.key!);
    expect((await send('192.0.2.13', 'tenant-a')).status).toBe(200);
    // What the README tells a caller that knows only the value.
    await app.limiter.reset(customKeyOf('tenant-a'));
    expect((await send('192.0.2.14', 'tenant-a')).status).toBe(200);
  });
});

describe('the key of a keyBy function', () => {
  const limiter = createRateLimiter({ limits: [{ limit: 1, windowMs: 60_000 }] });
  it("is never a built-in kind's key, whatever it returns, and one key per value", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.string({ minLength: 120, maxLength: 300 }),
          fc.constantFrom('ip:203.0.113.5', 'user:42', 'key:abc', 'custom:x'),
        ),
        fc.oneof(fc.string(), fc.string({ minLength: 120, maxLength: 300 })),
        fc.boolean(),
        (value, other, perEndpoint) => {
          const keyOf = (returned: string) => {
            const input = checkInputOf(
              { ip: '192.0.2.1', method: 'GET', route: '/r', headers: {}, user: undefined },
              middlewareOptionsSchema.parse({ limiter, perEndpoint, keyBy: () => returned }),
            );
            if (input instanceof Promise) throw new Error('sync options gave a promise');
            return input.key;
          };
          const key = keyOf(value);
          // An empty value is a missing one: the IP's key, as documented.
          if (value === '') expect(key.startsWith('ip:')).toBe(true);
          else expect(key.startsWith('custom:') || key.startsWith('custom#')).toBe(true);
          if (value !== '' && other !== '' && other !== value) expect(keyOf(other)).not.toBe(key);
        },
      ),
    );
  });
});

describe('the key of a long keyBy value', () => {
  // Short values, and values about the bound and far past it.
  const valueArb = fc.oneof(fc.string(), fc.string({ minLength: 100, maxLength: 2_000 }));
  it("is bounded whatever the value, and no short value can make a long value's key", () => {
    fc.assert(
      fc.property(valueArb, valueArb, (value, other) => {
        const key = customKeyOf(value);
        expect(key.length).toBeLessThanOrEqual('custom:'.length + maxCustomKeyValueLength);
        if (value.length <= maxCustomKeyValueLength) expect(key).toBe(`custom:${value}`);
        else expect(key).toMatch(/^custom#[A-Za-z0-9_-]{43}$/);
        if (other !== value) expect(customKeyOf(other)).not.toBe(key);
      }),
    );
    // A short value spelled as a digest key is still a short value's key.
    const digested = customKeyOf('x'.repeat(maxCustomKeyValueLength + 1));
    expect(customKeyOf(digested.slice('custom'.length))).toBe(`custom:${digested.slice('custom'.length)}`);
  });
});

describe('the key of a keyBy value that is not well-formed Unicode', () => {
  // A JavaScript string may hold lone surrogates (JSON.parse('"\\ud800"') makes one from a body
  // or a header). Redis keys and SHA-256 take UTF-8, which writes each lone surrogate as U+FFFD:
  // kept whole or digested as UTF-8, "\ud800" and "\udbff" (and "\ufffd") were one key in Redis,
  // one quota for distinct values (and distinct ones in memory).
  const utf8 = (key: string) => Buffer.from(key, 'utf8');
  const valueArb = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 8 }),
    fc.string({ unit: 'binary', minLength: 120, maxLength: 300 }),
    fc.string({ unit: 'grapheme', maxLength: 8 }),
  );
  // Two values alike but for one code unit, a lone surrogate or U+FFFD in one of them.
  const unitArb = fc.oneof(fc.integer({ min: 0xd800, max: 0xdfff }), fc.constant(0xfffd), fc.constant(0x61));
  const pairArb = fc
    .tuple(valueArb, unitArb, unitArb, valueArb)
    .map(([before, one, two, after]) => [
      `${before}${String.fromCharCode(one)}${after}`,
      `${before}${String.fromCharCode(two)}${after}`,
    ]);
  it('distinct values have distinct keys in bytes, and keys stay bounded', () => {
    fc.assert(
      fc.property(fc.oneof(pairArb, fc.tuple(valueArb, valueArb)), ([value, other]) => {
        const key = customKeyOf(value!);
        expect(key.length).toBeLessThanOrEqual('custom:'.length + maxCustomKeyValueLength);
        if (other !== value) expect(utf8(customKeyOf(other!)).equals(utf8(key))).toBe(false);
      }),
    );
  });
  it('the worked cases: lone surrogates, short and long', () => {
    const keys = ['\ud800', '\udbff', '\ufffd', '\udc00', 'a\ud800'.repeat(70), 'a\udbff'.repeat(70)].map(
      (value) => utf8(customKeyOf(value)).toString('hex'),
    );
    expect(new Set(keys).size).toBe(keys.length);
    // Well-formed values keep their keys.
    expect(customKeyOf('\u{1F980}')).toBe('custom:\u{1F980}');
  });
});

describe('the key of a keyBy function of a JavaScript caller', () => {
  const limiter = createRateLimiter({ limits: [{ limit: 1, windowMs: 60_000 }] });
  const keyOf = (returned: unknown) => {
    const input = checkInputOf(
      { ip: '192.0.2.1', method: 'GET', route: '/r', headers: {}, user: undefined },
      middlewareOptionsSchema.parse({ limiter, keyBy: () => returned }),
    );
    if (input instanceof Promise) throw new Error('sync options gave a promise');
    return input.key;
  };

  // Types say string, but a numeric id (a tenant, an account) is what JavaScript code returns: 0
  // is a tenant like any other, not a missing key (which would key every tenant-0 client by IP).
  it('is the value for any number, 0 included', () => {
    fc.assert(
      fc.property(fc.integer(), (id) => {
        expect(keyOf(id)).toBe(`custom:${id}`);
      }),
    );
    expect(keyOf(0)).toBe('custom:0');
  });

  it('is the IP for a null value, as for undefined and an empty string', () => {
    for (const missing of [null, undefined, '']) expect(keyOf(missing)).toBe('ip:192.0.2.1');
  });
});

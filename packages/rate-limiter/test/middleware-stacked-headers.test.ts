import type { AddressInfo } from 'node:net';
import { ManualClock } from '@noa/core';
import express from 'express';
import Fastify from 'fastify';
import { parseList } from 'structured-headers';
import { describe, expect, it } from 'vitest';
import { expressRateLimit } from '../src/express.js';
import { fastifyRateLimit } from '../src/fastify.js';
import { withEarlierPolicies } from '../src/headers.js';
import { createRateLimiter, type RateLimiter } from '../src/index.js';

// Two limiters on one request (a global one and a stricter one for a route, as the README's
// "Several limiters" and the Fastify plugin registered twice allow): draft-10's fields are lists,
// one member per policy, so a client must see both. The second check replaced the first's fields,
// so a client told `"login";r=7` was refused by `"api"`, which it had never seen.

const start = 1_700_000_000_000;

interface Served {
  /** Sends a request to the route both limiters check. */
  send: () => Promise<{ status: number; policy: string | null; state: string | null }>;
  close: () => Promise<void>;
}

async function serveExpress(first: RateLimiter, second: RateLimiter): Promise<Served> {
  const app = express();
  app.use(expressRateLimit({ limiter: first }));
  app.post('/login', expressRateLimit({ limiter: second }), (_req, res) => {
    res.send('ok');
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/login`;
  return {
    send: async () => {
      const response = await fetch(url, { method: 'POST' });
      await response.arrayBuffer();
      return {
        status: response.status,
        policy: response.headers.get('ratelimit-policy'),
        state: response.headers.get('ratelimit'),
      };
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

async function serveFastify(first: RateLimiter, second: RateLimiter): Promise<Served> {
  const app = Fastify();
  await app.register(fastifyRateLimit, { limiter: first });
  await app.register(fastifyRateLimit, { limiter: second });
  app.post('/login', async () => 'ok');
  await app.listen({ port: 0, host: '127.0.0.1' });
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/login`;
  return {
    send: async () => {
      const response = await fetch(url, { method: 'POST' });
      await response.arrayBuffer();
      return {
        status: response.status,
        policy: response.headers.get('ratelimit-policy'),
        state: response.headers.get('ratelimit'),
      };
    },
    close: () => app.close(),
  };
}

/** The names of a list field's members, as a structured-field parser reads them. */
const memberNames = (field: string | null): unknown[] => parseList(field ?? '').map((member) => member[0]);

describe.each([
  { framework: 'Express', serve: serveExpress },
  { framework: 'Fastify', serve: serveFastify },
])('$framework: two limiters checking one request', ({ serve }) => {
  it("send both limiters' policies in RateLimit-Policy and RateLimit, so the client sees the tighter one", async () => {
    const clock = new ManualClock(start);
    const api = createRateLimiter({
      prefix: 'api',
      limits: [{ name: 'api', limit: 3, windowMs: 60_000 }],
      clock,
    });
    const login = createRateLimiter({
      prefix: 'login',
      limits: [{ name: 'login', limit: 10, windowMs: 60_000 }],
      clock,
    });
    const app = await serve(api, login);
    try {
      const first = await app.send();
      expect(first.status).toBe(200);
      expect(first.policy).toBe('"api";q=3;w=60, "login";q=10;w=60');
      expect(first.state).toBe('"api";r=2;t=40, "login";r=9;t=40');
      await app.send();
      const third = await app.send();
      // What the client needs to know before it is refused: the api limit has nothing left.
      expect(third.state).toBe('"api";r=0;t=40, "login";r=7;t=40');
      const refused = await app.send();
      expect(refused.status).toBe(429);
      expect(refused.state).toBe('"api";r=0;t=40');
    } finally {
      await app.close();
      await Promise.all([api.close(), login.close()]);
    }
  });

  it('keeps one member per name: limits of one name (two unnamed ones, both `default`) are the later check’s', async () => {
    const clock = new ManualClock(start);
    const api = createRateLimiter({ prefix: 'api', limits: [{ limit: 3, windowMs: 60_000 }], clock });
    const login = createRateLimiter({
      prefix: 'login',
      limits: [
        { limit: 10, windowMs: 60_000 },
        { name: 'day', limit: 100, windowMs: 86_400_000 },
      ],
      clock,
    });
    const app = await serve(api, login);
    try {
      const first = await app.send();
      expect(first.status).toBe(200);
      expect(memberNames(first.policy)).toEqual(['default', 'day']);
      expect(memberNames(first.state)).toEqual(['default', 'day']);
      expect(first.policy).toBe('"default";q=10;w=60, "day";q=100;w=86400');
    } finally {
      await app.close();
      await Promise.all([api.close(), login.close()]);
    }
  });
});

describe('withEarlierPolicies', () => {
  const fresh = {
    'RateLimit-Policy': '"login";q=10;w=60',
    RateLimit: '"login";r=9;t=40',
    'Retry-After': '5',
  };

  it("keeps another library's draft-10 members (Strings with commas and escapes, several field lines)", () => {
    const earlier: Record<string, unknown> = {
      'RateLimit-Policy': ['"a, \\"b\\"";q=5;w=1;pk=:YWJj:', '"day"; q=100; w=86400'],
      RateLimit: '"a, \\"b\\"";r=4;t=1',
    };
    const merged = withEarlierPolicies({ ...fresh }, (name) => earlier[name]);
    expect(merged['RateLimit-Policy']).toBe(
      '"a, \\"b\\"";q=5;w=1;pk=:YWJj:, "day"; q=100; w=86400, "login";q=10;w=60',
    );
    expect(memberNames(merged['RateLimit-Policy']!)).toEqual(['a, "b"', 'day', 'login']);
    expect(memberNames(merged.RateLimit!)).toEqual(['a, "b"', 'login']);
    expect(merged['Retry-After']).toBe('5');
  });

  it('replaces what is no draft-10 list (draft-7 fields, a bare number) as before', () => {
    const earlier: Record<string, unknown> = {
      'RateLimit-Policy': '3;w=60',
      RateLimit: 'limit=3, remaining=2, reset=45',
    };
    expect(withEarlierPolicies({ ...fresh }, (name) => earlier[name])).toEqual(fresh);
    expect(withEarlierPolicies({ ...fresh }, () => undefined)).toEqual(fresh);
  });
});

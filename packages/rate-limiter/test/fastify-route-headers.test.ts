import type { AddressInfo } from 'node:net';
import { ManualClock } from '@noa/core';
import Fastify, { type FastifyInstance } from 'fastify';
import { describe, expect, it } from 'vitest';
import { fastifyRateLimit } from '../src/fastify.js';
import { createRateLimiter } from '../src/index.js';

// A route's `config.rateLimit` (and `fastify.rateLimit(options)`) overrides only what it writes.
// For `headers` that held for the object, not its fields: a route writing `headers: { legacyReset:
// 'delta-seconds' }` got the schema's defaults for the rest (`standard: true`, `legacy: false`),
// so under a plugin that sends only the legacy fields that route sent only the IETF ones.

const start = 1_700_000_000_000;

async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' });
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

/** The rate-limit fields of a response, by lowercase name. */
async function fieldsOf(url: string): Promise<Record<string, string>> {
  const response = await fetch(url);
  await response.arrayBuffer();
  const fields: Record<string, string> = {};
  for (const [name, value] of response.headers) if (name.includes('ratelimit')) fields[name] = value;
  return fields;
}

describe("Fastify: a route's headers override only the fields it writes", () => {
  it("config.rateLimit.headers: { legacyReset } keeps the plugin's legacy-only headers, in delta seconds", async () => {
    const clock = new ManualClock(start);
    const limiter = createRateLimiter({ limits: [{ limit: 5, windowMs: 60_000 }], clock });
    const app = Fastify();
    await app.register(fastifyRateLimit, { limiter, headers: { standard: false, legacy: true } });
    app.get('/plain', async () => 'ok');
    app.get(
      '/route',
      { config: { rateLimit: { headers: { legacyReset: 'delta-seconds' } } } },
      async () => 'ok',
    );
    const base = await listen(app);
    try {
      expect(await fieldsOf(`${base}/plain`)).toEqual({
        'x-ratelimit-limit': '5',
        'x-ratelimit-remaining': '4',
        'x-ratelimit-reset': String((start + 40_000) / 1_000),
      });
      expect(await fieldsOf(`${base}/route`)).toEqual({
        'x-ratelimit-limit': '5',
        'x-ratelimit-remaining': '3',
        'x-ratelimit-reset': '40',
      });
    } finally {
      await app.close();
      await limiter.close();
    }
  });

  it("config.rateLimit.headers: { legacy } keeps the plugin's draft", async () => {
    const clock = new ManualClock(start);
    const limiter = createRateLimiter({ limits: [{ limit: 5, windowMs: 60_000 }], clock });
    const app = Fastify();
    await app.register(fastifyRateLimit, { limiter, headers: { draft: 'draft-7' } });
    app.get('/route', { config: { rateLimit: { headers: { legacy: true } } } }, async () => 'ok');
    const base = await listen(app);
    try {
      expect(await fieldsOf(`${base}/route`)).toEqual({
        'ratelimit-policy': '5;w=60',
        ratelimit: 'limit=5, remaining=4, reset=40',
        'x-ratelimit-limit': '5',
        'x-ratelimit-remaining': '4',
        'x-ratelimit-reset': String((start + 40_000) / 1_000),
      });
    } finally {
      await app.close();
      await limiter.close();
    }
  });

  it("fastify.rateLimit({ headers: { legacy } }) keeps the plugin's draft too", async () => {
    const clock = new ManualClock(start);
    const limiter = createRateLimiter({ limits: [{ limit: 5, windowMs: 60_000 }], clock });
    const app = Fastify();
    await app.register(fastifyRateLimit, { limiter, global: false, headers: { draft: 'draft-6' } });
    app.get('/hook', { onRequest: app.rateLimit({ headers: { legacy: true } }) }, async () => 'ok');
    const base = await listen(app);
    try {
      expect(await fieldsOf(`${base}/hook`)).toEqual({
        'ratelimit-policy': '5;w=60',
        'ratelimit-limit': '5',
        'ratelimit-remaining': '4',
        'ratelimit-reset': '40',
        'x-ratelimit-limit': '5',
        'x-ratelimit-remaining': '4',
        'x-ratelimit-reset': String((start + 40_000) / 1_000),
      });
    } finally {
      await app.close();
      await limiter.close();
    }
  });
});

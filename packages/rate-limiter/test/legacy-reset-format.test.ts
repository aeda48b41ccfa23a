import { ManualClock } from '@noa/core';
import { afterAll, describe, expect, it } from 'vitest';
import { expressRateLimit } from '../src/express.js';
import { ConfigError, createRateLimiter, rateLimitHeaders } from '../src/index.js';
import { type App, expressApp, fastifyApp } from './http-apps.js';

// express-rate-limit's legacy X-RateLimit-Reset is an epoch in seconds; @fastify/rate-limit's is
// the seconds left until the window resets. `headers.legacyReset` picks one, so that a client
// written against either keeps reading what it expects.

const start = 1_700_000_040_000; // a minute boundary: the fixed window starts here
const windowMs = 60_000;
const apps: App[] = [];
afterAll(async () => {
  for (const app of apps) await app.close();
});

describe('rateLimitHeaders: legacyReset', () => {
  const limiter = createRateLimiter({ limits: [{ limit: 5, windowMs }], clock: new ManualClock(start) });
  const result = limiter.checkSync('k');

  it("'epoch-seconds' (the default) is the epoch second the window resets at", () => {
    expect(rateLimitHeaders(result, { legacy: true }, start)['X-RateLimit-Reset']).toBe(
      String((start + windowMs) / 1_000),
    );
    expect(
      rateLimitHeaders(result, { legacy: true, legacyReset: 'epoch-seconds' }, start)['X-RateLimit-Reset'],
    ).toBe(String((start + windowMs) / 1_000));
  });

  it("'delta-seconds' is the seconds until the window resets, as @fastify/rate-limit sends", () => {
    const headers = rateLimitHeaders(result, { legacy: true, legacyReset: 'delta-seconds' }, start + 10_000);
    // resetMs counts from the check, not from `now`: 60 s left when checked.
    expect(headers['X-RateLimit-Reset']).toBe('60');
  });

  it('a blocked key states the seconds until its block ends', async () => {
    const blocking = createRateLimiter({ limits: [{ limit: 5, windowMs }], clock: new ManualClock(start) });
    await blocking.block('b', 90_000);
    const blocked = blocking.checkSync('b');
    expect(
      rateLimitHeaders(blocked, { legacy: true, legacyReset: 'delta-seconds' })['X-RateLimit-Reset'],
    ).toBe('90');
  });

  it('refuses another value, naming the field', () => {
    const limiter = createRateLimiter({ limits: [{ limit: 5, windowMs }] });
    // @ts-expect-error: not one of the two formats
    const bad = () => expressRateLimit({ limiter, headers: { legacy: true, legacyReset: 'ms' } });
    expect(bad).toThrow(ConfigError);
    expect(bad).toThrow(/headers\.legacyReset/);
  });
});

for (const [name, serve] of [
  ['Express', expressApp],
  ['Fastify', fastifyApp],
] as const)
  describe(`${name} over HTTP: headers.legacyReset`, () => {
    it("'delta-seconds' sends the seconds left, 'epoch-seconds' the epoch", async () => {
      const clock = new ManualClock(start);
      const delta = await serve(createRateLimiter({ limits: [{ limit: 5, windowMs }], clock }), {
        headers: { legacy: true, legacyReset: 'delta-seconds' },
      });
      const epoch = await serve(createRateLimiter({ limits: [{ limit: 5, windowMs }], clock }), {
        headers: { legacy: true },
      });
      apps.push(delta, epoch);
      clock.advance(15_000);
      expect((await fetch(delta.base)).headers.get('x-ratelimit-reset')).toBe('45');
      expect((await fetch(epoch.base)).headers.get('x-ratelimit-reset')).toBe(
        String((start + windowMs) / 1_000),
      );
    });
  });

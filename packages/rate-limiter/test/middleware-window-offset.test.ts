import { ManualClock } from '@noa/core';
import { afterAll, describe, expect, it } from 'vitest';
import { createRateLimiter } from '../src/index.js';
import { type App, expressApp, fastifyApp } from './http-apps.js';

// windowOffsetMs over real HTTP (memory store, injected clock): the RateLimit t and the legacy
// X-RateLimit-Reset name the end of the offset window, not of the epoch's. The Redis twin is
// test/integration/window-offset.test.ts.

const start = 1_700_000_040_000; // a minute boundary of the epoch's grid
const windowMs = 60_000;
const offset = 45_000; // windows start at hh:mm:45: the one holding `start` ends 45 s later
const apps: App[] = [];
afterAll(async () => {
  for (const app of apps) await app.close();
});

for (const [name, serve] of [
  ['Express', expressApp],
  ['Fastify', fastifyApp],
] as const)
  describe(`${name}: reset headers of a limit with windowOffsetMs`, () => {
    it('RateLimit t and X-RateLimit-Reset count to k × windowMs + offset', async () => {
      const clock = new ManualClock(start);
      const limiter = createRateLimiter({ limits: [{ limit: 2, windowMs, windowOffsetMs: offset }], clock });
      const app = await serve(limiter, { headers: { legacy: true } });
      apps.push(app, { base: '', close: () => limiter.close() });
      const first = await fetch(app.base);
      expect(first.status).toBe(200);
      expect(first.headers.get('ratelimit')).toBe('"default";r=1;t=45');
      expect(Number(first.headers.get('x-ratelimit-reset'))).toBe((start + 45_000) / 1_000);
      clock.advance(30_000);
      await fetch(app.base);
      const refused = await fetch(app.base);
      expect(refused.status).toBe(429);
      expect(refused.headers.get('ratelimit')).toBe('"default";r=0;t=15');
      expect(refused.headers.get('retry-after')).toBe('15');
      // At the offset window's end the quota is back: a minute boundary would have been 30 s later.
      clock.advance(15_000);
      const next = await fetch(app.base);
      expect(next.status).toBe(200);
      expect(next.headers.get('ratelimit')).toBe('"default";r=1;t=60');
      expect(Number(next.headers.get('x-ratelimit-reset'))).toBe((start + 105_000) / 1_000);
    });
  });

import { ManualClock } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { createRateLimiter } from '../src/index.js';
import { expressApp, fastifyApp } from './http-apps.js';

// Clients written against express-rate-limit parse its `standardHeaders: 'draft-6'` or 'draft-7'
// fields: `headers.draft` sends those instead of draft-10's, for the tightest limit.

const start = 1_800_000_000_000;

describe.each([
  { name: 'Express', serve: expressApp },
  { name: 'Fastify', serve: fastifyApp },
])('$name: headers.draft', ({ serve }) => {
  const limiterAt = (clock: ManualClock) =>
    createRateLimiter({
      limits: [
        { name: 'minute', limit: 3, windowMs: 60_000 },
        { name: 'day', limit: 1_000, windowMs: 86_400_000 },
      ],
      clock,
    });

  it("'draft-6': RateLimit-Limit, -Remaining, -Reset and RateLimit-Policy of the tightest limit", async () => {
    const clock = new ManualClock(start + 15_000);
    const limiter = limiterAt(clock);
    const app = await serve(limiter, { headers: { draft: 'draft-6' } });
    try {
      const response = await fetch(app.base);
      await response.arrayBuffer();
      expect(response.headers.get('ratelimit-limit')).toBe('3');
      expect(response.headers.get('ratelimit-remaining')).toBe('2');
      expect(response.headers.get('ratelimit-reset')).toBe('45');
      expect(response.headers.get('ratelimit-policy')).toBe('3;w=60');
      expect(response.headers.get('ratelimit')).toBeNull();
      for (let index = 0; index < 2; index += 1) await (await fetch(app.base)).arrayBuffer();
      const refused = await fetch(app.base);
      await refused.arrayBuffer();
      expect(refused.status).toBe(429);
      expect(refused.headers.get('ratelimit-remaining')).toBe('0');
      expect(refused.headers.get('ratelimit-reset')).toBe('45');
      expect(refused.headers.get('retry-after')).toBe('45');
    } finally {
      await app.close();
      await limiter.close();
    }
  });

  it("'draft-7': RateLimit: limit=…, remaining=…, reset=… and RateLimit-Policy", async () => {
    const clock = new ManualClock(start + 15_000);
    const limiter = limiterAt(clock);
    const app = await serve(limiter, { headers: { draft: 'draft-7', legacy: true } });
    try {
      const response = await fetch(app.base);
      await response.arrayBuffer();
      expect(response.headers.get('ratelimit')).toBe('limit=3, remaining=2, reset=45');
      expect(response.headers.get('ratelimit-policy')).toBe('3;w=60');
      expect(response.headers.get('ratelimit-limit')).toBeNull();
      // The legacy fields still come with it.
      expect(response.headers.get('x-ratelimit-remaining')).toBe('2');
    } finally {
      await app.close();
      await limiter.close();
    }
  });

  it("'draft-10' (the default): the structured fields, one member per limit", async () => {
    const clock = new ManualClock(start + 15_000);
    const limiter = limiterAt(clock);
    const app = await serve(limiter, { headers: { draft: 'draft-10' } });
    try {
      const response = await fetch(app.base);
      await response.arrayBuffer();
      expect(response.headers.get('ratelimit')).toMatch(/^"minute";r=2;t=45, "day";r=999;t=\d+$/);
      expect(response.headers.get('ratelimit-limit')).toBeNull();
    } finally {
      await app.close();
      await limiter.close();
    }
  });
});

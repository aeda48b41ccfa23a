import { ManualClock } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { createRateLimiter } from '../src/index.js';

// rate-limiter-flexible's delete(key) resolves whether the key existed; our reset() resolved
// nothing, so a caller could not tell "unblocked a user" from "no such user".

const start = 1_700_000_040_000;

describe('limiter.reset() resolves whether the key had state', () => {
  it('true for a counted or blocked key, false for an unknown or already reset one, per role', async () => {
    const limiter = createRateLimiter({
      limits: [{ limit: 5, windowMs: 60_000 }],
      roles: { pro: [{ limit: 50, windowMs: 60_000 }] },
      clock: new ManualClock(start),
    });
    expect(await limiter.reset('nobody')).toBe(false);
    await limiter.check('a');
    expect(await limiter.reset('a', 'pro')).toBe(false);
    expect(await limiter.reset('a')).toBe(true);
    expect(await limiter.reset('a')).toBe(false);
    await limiter.block('b', 10_000);
    expect(await limiter.reset('b')).toBe(true);
  });

  it('false once the key has expired', async () => {
    const clock = new ManualClock(start);
    const limiter = createRateLimiter({ limits: [{ limit: 5, windowMs: 60_000 }], clock });
    await limiter.check('a');
    clock.advance(61_000);
    expect(await limiter.reset('a')).toBe(false);
  });
});

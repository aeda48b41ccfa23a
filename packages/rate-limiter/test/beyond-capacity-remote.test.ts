import { ManualClock } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { createRateLimiter, MemoryStore } from '../src/index.js';
import { RemoteMemoryStore } from './remote-memory-store.js';

// A cost above a limit's capacity is refused as `exceeds-capacity`, and the limits it is within
// report the key's state as a cost-0 check finds it (README, "A cost no limit can ever admit").
// On a remote store whose local block cache remembers a refusal of the key, that answer came from
// the remembered refusal, of another cost: a limit with room for nothing more said "refused,
// retry in N" where the memory store says "admits a cost of 0". Found by the model-based test on
// Redis (integration/limiter-model.test.ts), whose memory twin disagreed.
//
// Fixed in `beyondCapacity()` (src/limiter.ts): a limit the cost is within reports its state as a
// cost-0 check does (`allowed: blockedMs === 0`, `retryAfterMs: blockedMs`, `delayMs: 0`),
// whichever outcome it was given.

const start = 1_800_000_000_000;
const limits = [
  { name: 'b', limit: 2, windowMs: 60_000 },
  { name: 'a', limit: 1, windowMs: 60_000 },
];

describe('exceeds-capacity on a remote store answers as on the memory store', () => {
  it('after a refusal the block cache remembers, the limits within the cost report a cost-0 check', async () => {
    const answers = [];
    for (const remote of [false, true]) {
      const clock = new ManualClock(start);
      const store = remote ? new RemoteMemoryStore(clock) : new MemoryStore({ clock });
      const limiter = createRateLimiter({ limits, clock, store });
      await limiter.penalize('k', 2);
      expect((await limiter.check('k')).outcome).toBe('limited');
      clock.advance(100);
      const beyond = await limiter.check({ key: 'k', cost: 2 });
      expect(beyond.outcome).toBe('exceeds-capacity');
      answers.push(
        beyond.limits.map(({ name, allowed, remaining, retryAfterMs }) => ({
          name,
          allowed,
          remaining,
          retryAfterMs,
        })),
      );
      await limiter.close();
    }
    expect(answers[0]).toEqual([
      { name: 'b', allowed: true, remaining: 0, retryAfterMs: 0 },
      { name: 'a', allowed: false, remaining: 0, retryAfterMs: Number.POSITIVE_INFINITY },
    ]);
    expect(answers[1]).toEqual(answers[0]);
  });
});

import { ManualClock } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { createRateLimiter, type LimitInput, rateLimitHeaders } from '../src/index.js';
import { RemoteMemoryStore } from './remote-memory-store.js';

// The memory store's answer during a block (blocked-retry.test.ts) on a remote store, where the
// local block cache answers a blocked key's checks without a store call: a check of a cost the
// window cannot admit must still say when the window admits it (the later of the block's end and
// the window's), and one the window admits only the block's end, whatever cost the remembered
// refusal was of. Found by the model-based test (integration/limiter-model.test.ts) on Redis:
// after `block()`, a check of a spent window said "retry when the block ends", and a client that
// obeyed was refused again.

const windowStart = 1_800_000_000_000;
const limits: LimitInput[] = [{ name: 'minute', limit: 2, windowMs: 60_000 }];

describe('a check during a block on a remote store answers when a request would be admitted', () => {
  it('a manual block over a spent window: the window’s end, not the block’s', async () => {
    const clock = new ManualClock(windowStart + 13_000);
    const limiter = createRateLimiter({ limits, clock, store: new RemoteMemoryStore(clock) });
    await limiter.check('k');
    await limiter.check('k');
    await limiter.block('k', 5_000);
    // Within the second the cache answers the block without asking the store again.
    clock.advance(500);
    const during = await limiter.check('k');
    expect(during.outcome).toBe('blocked');
    expect(during.retryAfterMs).toBe(46_500);
    expect(rateLimitHeaders(during)['Retry-After']).toBe('47');
    await limiter.close();
  });

  it('a cost that fits the quota left needs only the block’s end; one that does not, the window’s', async () => {
    const clock = new ManualClock(windowStart + 13_000);
    const limiter = createRateLimiter({
      limits: [{ limit: 10, windowMs: 60_000 }],
      clock,
      store: new RemoteMemoryStore(clock),
    });
    await limiter.check({ key: 'k', cost: 7 });
    await limiter.block('k', 5_000);
    expect((await limiter.check({ key: 'k', cost: 4 })).retryAfterMs).toBe(47_000);
    expect((await limiter.check({ key: 'k', cost: 3 })).retryAfterMs).toBe(5_000);
    expect((await limiter.check({ key: 'k', cost: 4 })).retryAfterMs).toBe(47_000);
    expect((await limiter.check({ key: 'k', cost: 0 })).retryAfterMs).toBe(5_000);
    await limiter.close();
  });
});

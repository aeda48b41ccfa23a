import { ManualClock } from '@noa/core';
import { describe, expect, it, vi } from 'vitest';
import { createRateLimiter, type Decision, type LimitPolicy, MemoryStore } from '../src/index.js';

/** A store that counts (and may refuse) every single-limit check: a subclass's override. */
class AuditedStore extends MemoryStore {
  readonly seen: string[] = [];
  refuse = false;

  override consumeSingle(
    key: string,
    policy: LimitPolicy,
    cost: number,
    namespace = '',
  ): Decision | undefined {
    this.seen.push(key);
    const decision = super.consumeSingle(key, policy, cost, namespace);
    return decision && this.refuse ? { ...decision, allowed: false } : decision;
  }
}

describe('a MemoryStore subclass that overrides consumeSingle', () => {
  it('sees every check of a live key: the limiter takes no hot path around it', async () => {
    const clock = new ManualClock(1_700_000_040_000);
    const store = new AuditedStore({ clock });
    const limiter = createRateLimiter({ limits: [{ limit: 100, windowMs: 60_000 }], clock, store });
    for (let check = 0; check < 5; check += 1) expect((await limiter.check('k')).allowed).toBe(true);
    // Before: 1 (the first check made the key; the next four took consumeHot).
    expect(store.seen).toEqual(['k', 'k', 'k', 'k', 'k']);
    store.refuse = true;
    expect((await limiter.check('k')).allowed).toBe(false);
    await limiter.close();
  });

  it('the built-in store still answers a live key on the hot path', async () => {
    const clock = new ManualClock(1_700_000_040_000);
    const general = vi.spyOn(MemoryStore.prototype, 'consumeSingle');
    try {
      const store = new MemoryStore({ clock });
      const limiter = createRateLimiter({ limits: [{ limit: 100, windowMs: 60_000 }], clock, store });
      for (let check = 0; check < 5; check += 1) expect((await limiter.check('k')).allowed).toBe(true);
      // The first check makes the key (general path); the next four take consumeHot.
      expect(general).toHaveBeenCalledTimes(1);
      await limiter.close();
    } finally {
      general.mockRestore();
    }
  });
});

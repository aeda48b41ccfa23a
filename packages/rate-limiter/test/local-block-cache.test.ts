import { describe, expect, it } from 'vitest';
import { blockRecheckMs, LocalBlockCache } from '../src/local-block-cache.js';
import type { ConsumeOutcome } from '../src/stores/store.js';

/** A store's refusal of one limit, retry in `retryAfterMs`. */
const refusal = (retryAfterMs: number): ConsumeOutcome => ({
  blockedMs: 0,
  decisions: [
    {
      name: 'daily',
      windowMs: 86_400_000,
      limit: 1,
      allowed: false,
      remaining: 0,
      resetMs: retryAfterMs,
      nextMs: retryAfterMs,
      retryAfterMs,
      delayMs: 0,
    },
  ],
});
const admission: ConsumeOutcome = {
  blockedMs: 0,
  decisions: [
    {
      name: 'daily',
      windowMs: 86_400_000,
      limit: 1,
      allowed: true,
      remaining: 0,
      resetMs: 1,
      nextMs: 1,
      retryAfterMs: 0,
      delayMs: 0,
    },
  ],
};

describe('LocalBlockCache', () => {
  it('lets one recheck through when a long refusal’s second is up, and refuses the rest until it answers', () => {
    const cache = new LocalBlockCache(10);
    cache.remember('k', refusal(60_000), 0);
    expect(cache.lookup('k', blockRecheckMs - 1)?.decisions[0]?.retryAfterMs).toBe(
      60_000 - blockRecheckMs + 1,
    );
    expect(cache.lookup('k', blockRecheckMs)).toBeUndefined();
    // Checks while the recheck is out: still the refusal, its times shifted.
    for (const at of [blockRecheckMs, blockRecheckMs + 5, blockRecheckMs + 500])
      expect(cache.lookup('k', at)?.decisions[0]?.retryAfterMs).toBe(60_000 - at);
    // Still refused: remembered for another second.
    cache.settle('k', refusal(58_000), true, blockRecheckMs + 10);
    expect(cache.lookup('k', 2 * blockRecheckMs)).toBeDefined();
    expect(cache.lookup('k', 2 * blockRecheckMs + 10)).toBeUndefined();
  });

  it('with auto-block, answers blocks only: every refusal goes to the store, which counts it, and is kept for the fail mode', () => {
    const cache = new LocalBlockCache(10, true);
    cache.remember('k', refusal(60_000), 0);
    expect(cache.lookup('k', 1)).toBeUndefined();
    // The store unreachable: the refusal it gave last still holds.
    expect(cache.settle('k', admission, false, 2)?.decisions[0]?.allowed).toBe(false);
    cache.remember('k', { ...refusal(60_000), blockedMs: 60_000 }, 3);
    expect(cache.lookup('k', 4)?.blockedMs).toBe(59_999);
  });

  it('with auto-block, answers a block only until it ends, though the window refuses for longer', () => {
    // A block of 500 ms on a key whose day is spent (retry in a day): remembered until the
    // recheck a second later, it was answered here after the block's end too, as a refusal the
    // store never counted as a violation.
    const cache = new LocalBlockCache(10, true);
    cache.remember('k', { ...refusal(86_400_000), blockedMs: 500 }, 0);
    expect(cache.lookup('k', 499)?.blockedMs).toBe(1);
    expect(cache.lookup('k', 500)).toBeUndefined();
    expect(cache.lookup('k', 900)).toBeUndefined();
    // Still kept for the fail mode: the window's refusal holds.
    expect(cache.settle('k', admission, false, 901)?.decisions[0]?.allowed).toBe(false);
  });

  it('forgets the refusal when the store admits the recheck', () => {
    const cache = new LocalBlockCache(10);
    cache.remember('k', refusal(60_000), 0);
    expect(cache.lookup('k', blockRecheckMs)).toBeUndefined();
    expect(cache.settle('k', admission, true, blockRecheckMs + 1)).toBeUndefined();
    expect(cache.lookup('k', blockRecheckMs + 2)).toBeUndefined();
    expect(cache.lookup('k', blockRecheckMs + 3)).toBeUndefined();
  });

  it('keeps the refusal when the fail mode answers the recheck (the store could not lift it), and rechecks a second later', () => {
    const cache = new LocalBlockCache(10);
    cache.remember('k', refusal(60_000), 0);
    expect(cache.lookup('k', blockRecheckMs)).toBeUndefined();
    // The caller answers with the refusal the store gave, not the fail mode's answer.
    const known = cache.settle('k', admission, false, blockRecheckMs + 1);
    expect(known?.decisions[0]).toMatchObject({ allowed: false, retryAfterMs: 60_000 - blockRecheckMs - 1 });
    expect(cache.lookup('k', blockRecheckMs + 2)).toBeDefined();
    expect(cache.lookup('k', 2 * blockRecheckMs)).toBeDefined();
    expect(cache.lookup('k', 2 * blockRecheckMs + 1)).toBeUndefined();
  });

  it('a fail-mode answer after the refusal ended forgets it, returning nothing to answer with', () => {
    const cache = new LocalBlockCache(10);
    cache.remember('k', refusal(1_500), 0);
    expect(cache.lookup('k', blockRecheckMs)).toBeUndefined();
    expect(cache.settle('k', admission, false, 1_500)).toBeUndefined();
    expect(cache.lookup('k', 1_501)).toBeUndefined();
  });

  it('a recheck never answered does not hold the refusal for good: another goes a second later', () => {
    const cache = new LocalBlockCache(10);
    cache.remember('k', refusal(60_000), 0);
    expect(cache.lookup('k', blockRecheckMs)).toBeUndefined();
    expect(cache.lookup('k', 2 * blockRecheckMs - 1)).toBeDefined();
    expect(cache.lookup('k', 2 * blockRecheckMs)).toBeUndefined();
  });

  it('a refusal that ends within the second is not held past its end', () => {
    const cache = new LocalBlockCache(10);
    cache.remember('k', refusal(300), 0);
    expect(cache.lookup('k', 299)).toBeDefined();
    expect(cache.lookup('k', 300)).toBeUndefined();
    expect(cache.lookup('k', 301)).toBeUndefined();
  });

  it('at its cap drops the refusal remembered longest ago, not a hot key remembered again since', () => {
    const cache = new LocalBlockCache(2);
    cache.remember('hot', refusal(60_000), 0);
    cache.remember('cold', refusal(60_000), 10);
    // The hot key's recheck, refused again: remembered anew.
    expect(cache.lookup('hot', blockRecheckMs)).toBeUndefined();
    cache.settle('hot', refusal(59_000), true, blockRecheckMs + 1);
    cache.remember('new', refusal(60_000), blockRecheckMs + 2);
    expect(cache.lookup('hot', blockRecheckMs + 3)).toBeDefined();
    expect(cache.lookup('new', blockRecheckMs + 3)).toBeDefined();
    expect(cache.lookup('cold', blockRecheckMs + 3)).toBeUndefined();
  });
  it('past a block, answers only a check of the cost refused: a smaller cost may fit, a larger one waits longer', () => {
    const cache = new LocalBlockCache(10);
    cache.remember('k', refusal(60_000), 0, 5);
    expect(cache.lookup('k', 1, 5)).toBeDefined();
    expect(cache.lookup('k', 2, 1)).toBeUndefined();
    expect(cache.lookup('k', 3, 6)).toBeUndefined();
    expect(cache.lookup('k', 4, 0)).toBeUndefined();
    // A cost-0 admission changed nothing: the refusal holds; any other admission ends it.
    expect(cache.settle('k', admission, true, 5, 0)).toBeUndefined();
    expect(cache.lookup('k', 6, 5)).toBeDefined();
    // The fail mode answers a smaller cost; a larger one is still refused.
    expect(cache.settle('k', admission, false, 7, 1)).toBeUndefined();
    expect(cache.settle('k', admission, false, 8, 9)?.decisions[0]?.allowed).toBe(false);
    expect(cache.settle('k', admission, true, 9, 1)).toBeUndefined();
    expect(cache.lookup('k', 10, 5)).toBeUndefined();
    // A block refuses every cost until it ends, but says when only for a cost its windows admit
    // (then at the block's end): for another cost the spent window's retry time is the store's.
    cache.remember('b', { ...refusal(500), blockedMs: 500 }, 0, 5);
    expect(cache.lookup('b', 1, 1)).toBeUndefined();
    expect(cache.lookup('b', 2, 0)?.blockedMs).toBe(498);
    expect(cache.lookup('b', 2, 0)?.decisions[0]?.retryAfterMs).toBe(498);
  });
});

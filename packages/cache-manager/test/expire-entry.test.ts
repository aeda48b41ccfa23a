import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createEntry, expireEntry, isFresh } from '../src/entry.js';

const time = fc.integer({ min: 0, max: 1e12 });
const duration = fc.integer({ min: 0, max: 1e9 });
/** An entry as `set` builds it: written at `createdAt`, with or without TTL, with some grace. */
const entry = fc
  .record({
    createdAt: time,
    ttlMs: fc.option(fc.integer({ min: 1, max: 1e9 }), { nil: undefined }),
    graceMs: duration,
    tags: fc.array(fc.string(), { maxLength: 3 }),
  })
  .map(({ createdAt, ttlMs, graceMs, tags }) => createEntry('value', createdAt, ttlMs, graceMs, 5, tags));

describe('expireEntry', () => {
  it('ends freshness at now and keeps the entry’s grace after it, never past the original grace', () => {
    fc.assert(
      fc.property(entry, duration, duration, (original, elapsed, defaultGraceMs) => {
        const now = original.createdAt + elapsed;
        const expired = expireEntry(original, now, defaultGraceMs);
        if (!isFresh(original, now)) {
          expect(expired).toBeUndefined();
          return;
        }
        expect(expired).toBeDefined();
        expect(isFresh(expired!, now)).toBe(false);
        expect(expired!.expiresAt).toBe(now);
        const graceMs = Number.isFinite(original.expiresAt)
          ? original.staleUntil - original.expiresAt
          : defaultGraceMs;
        expect(expired!.staleUntil).toBe(now + graceMs);
        expect(expired!.staleUntil).toBeLessThanOrEqual(original.staleUntil);
        expect({ ...expired, expiresAt: 0, staleUntil: 0 }).toEqual({
          ...original,
          expiresAt: 0,
          staleUntil: 0,
        });
      }),
    );
  });

  it('is idempotent: an expired entry is not expired again (its grace does not restart)', () => {
    fc.assert(
      fc.property(entry, duration, duration, duration, (original, elapsed, later, defaultGraceMs) => {
        const now = original.createdAt + elapsed;
        const expired = expireEntry(original, now, defaultGraceMs);
        if (expired) expect(expireEntry(expired, now + later, defaultGraceMs)).toBeUndefined();
      }),
    );
  });

  it('leaves the original entry untouched (L1 callers may hold it)', () => {
    const original = createEntry({ n: 1 }, 1_000, 60_000, 10_000, 5, ['t']);
    const copy = structuredClone(original);
    expireEntry(original, 2_000, 0);
    expect(original).toEqual(copy);
  });
});

import { describe, expect, it } from 'vitest';
import { BusyLeases } from '../src/busy-leases.js';
import type { CacheEntry } from '../src/entry.js';

const entry = (writeId: number | undefined, createdAt = 1): CacheEntry =>
  ({ value: 'v', createdAt, writeId }) as unknown as CacheEntry;

describe('BusyLeases', () => {
  it('is busy for the same value until the window ends', () => {
    const leases = new BusyLeases();
    leases.remember('k', entry(7), 100, 0);
    expect(leases.busy('k', entry(7), 99)).toBe(true);
    expect(leases.busy('k', entry(7), 100)).toBe(false);
    // Forgotten once it ended.
    expect(leases.size).toBe(0);
  });

  it('is not busy for another value (another write id, or createdAt without ids), and forgets it', () => {
    const leases = new BusyLeases();
    leases.remember('k', entry(7), 100, 0);
    expect(leases.busy('k', entry(8), 1)).toBe(false);
    expect(leases.busy('k', entry(7), 1)).toBe(false);
    leases.remember('old', entry(undefined, 5), 100, 0);
    expect(leases.busy('old', entry(undefined, 5), 1)).toBe(true);
    expect(leases.busy('old', entry(undefined, 6), 1)).toBe(false);
    expect(leases.busy('absent', entry(1), 1)).toBe(false);
  });

  it('sweeps expired keys once it holds many, so keys never hit again do not pile up', () => {
    const leases = new BusyLeases();
    for (let index = 0; index < 1_024; index += 1) leases.remember(`k${index}`, entry(index), 100, 0);
    expect(leases.size).toBe(1_024);
    leases.remember('late', entry(1), 300, 200);
    expect(leases.size).toBe(1);
  });
});

import { describe, expect, it } from 'vitest';
import { ownCpuLoop } from '../src/bench.js';

describe('ownCpuLoop', () => {
  it('calls fn with each index in order, awaiting a returned promise before the next call', async () => {
    const loop = ownCpuLoop();
    const calls: number[] = [];
    let pending = 0;
    const rate = await loop(5, async (index) => {
      expect(pending).toBe(0);
      pending += 1;
      calls.push(index);
      await new Promise((resolve) => setImmediate(resolve));
      pending -= 1;
    });
    expect(calls).toEqual([0, 1, 2, 3, 4]);
    expect(rate).toBeGreaterThan(0);
    expect(Number.isFinite(rate)).toBe(true);
  });

  it('returns a new function on each call (one per side of a case)', () => {
    const first = ownCpuLoop();
    const second = ownCpuLoop();
    expect(first).not.toBe(second);
    expect(first.toString()).toBe(second.toString());
  });
});

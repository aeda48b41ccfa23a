import { describe, expect, it } from 'vitest';
import { awayFromWindowEdge } from '../src/index.js';

describe('awayFromWindowEdge', () => {
  it('returns at once, with the ms left, when the margin remains', async () => {
    const reads: number[] = [];
    const clock = () => {
      reads.push(10_000 + 1_200);
      return 11_200;
    };
    expect(await awayFromWindowEdge(2_000, 500, clock)).toBe(800);
    expect(reads).toHaveLength(1);
  });

  it('waits out the rest of the window when fewer than marginMs remain, and checks again', async () => {
    // A real clock shifted so that its window (250 ms) ends in 30 ms.
    const windowMs = 250;
    const shift = windowMs - 30 - (Date.now() % windowMs);
    const clock = () => Date.now() + shift;
    const started = clock();
    const left = await awayFromWindowEdge(windowMs, 100, clock);
    const after = clock();
    expect(Math.floor(after / windowMs)).toBeGreaterThan(Math.floor(started / windowMs));
    expect(left).toBeGreaterThanOrEqual(100);
    expect(windowMs - (after % windowMs)).toBeGreaterThanOrEqual(90);
  });

  it('accepts an async clock (Redis TIME) and rejects a margin of a whole window', async () => {
    expect(await awayFromWindowEdge(1_000, 0, async () => 4_999)).toBe(1);
    await expect(awayFromWindowEdge(1_000, 1_000)).rejects.toThrow(RangeError);
  });
});

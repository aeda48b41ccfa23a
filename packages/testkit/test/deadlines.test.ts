import { describe, expect, it } from 'vitest';
import { cleanUpWithin, within } from '../src/deadlines.js';

const never = new Promise<never>(() => {});

describe('within', () => {
  it('gives the work its outcome, or fails naming the step once the bound passes', async () => {
    expect(await within('a quick step', 1_000, Promise.resolve(7))).toBe(7);
    await expect(within('a failing step', 1_000, Promise.reject(new Error('refused')))).rejects.toThrow(
      'refused',
    );
    await expect(within('the private node to start', 20, never)).rejects.toThrow(
      /^the private node to start: not done after \d+ ms \(bound 20 ms\)$/,
    );
  });
});

describe('cleanUpWithin', () => {
  it('runs every step even after one hung or failed, then names each failure', async () => {
    const ran: string[] = [];
    const cleanup = cleanUpWithin([
      ['worker.close()', 20, () => never],
      [
        'provider.close()',
        1_000,
        () => {
          ran.push('provider');
          throw new Error('socket gone');
        },
      ],
      ['redis.disconnect()', 1_000, () => ran.push('redis')],
    ]);
    await expect(cleanup).rejects.toThrow(
      /^cleanup failed: worker\.close\(\): not done after \d+ ms \(bound 20 ms\); provider\.close\(\): socket gone$/,
    );
    expect(ran).toEqual(['provider', 'redis']);
  });
});

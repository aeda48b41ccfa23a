import { describe, expect, it } from 'vitest';
import { redisUp, sharedRedisCaches } from './helpers.js';

const { open } = sharedRedisCaches('l1-bytes');

/**
 * L1's byte bound with Redis charges each entry its encoded size. A compressed value's encoding
 * says little about the decoded value L1 actually holds (a 2 MB string of one repeated digit
 * compresses to a few hundred bytes), so the charge must not be the compressed length.
 */
describe.skipIf(!redisUp)('L1 byte bound with compressed values', () => {
  const compressing = {
    compression: { algorithm: 'zstd', thresholdBytes: 1024 },
    l1: { maxBytes: 4_000_000 },
  } as const;
  const value = (index: number) => String(index % 10).repeat(2_000_000);

  it('written values are charged at least their decoded size', async () => {
    const cache = await open(compressing);
    for (let index = 0; index < 10; index += 1) await cache.set(`written:${index}`, value(index));
    const { entries, bytes } = cache.stats().l1;
    expect(bytes).toBeLessThanOrEqual(4_000_000);
    // Ten 2 MB strings do not fit in 4 MB: at most one survives its neighbours' writes.
    expect(entries).toBeLessThanOrEqual(1);
  });

  it('values read from L2 are charged at least their decoded size', async () => {
    const writer = await open(compressing);
    for (let index = 0; index < 10; index += 1) await writer.set(`read:${index}`, value(index));
    const reader = await open(compressing);
    const seen = await reader.getMany(Array.from({ length: 5 }, (_, index) => `read:${index}`));
    expect(seen.every((read, index) => read === value(index))).toBe(true);
    for (let index = 5; index < 10; index += 1) expect(await reader.get(`read:${index}`)).toBe(value(index));
    const { entries, bytes } = reader.stats().l1;
    expect(bytes).toBeLessThanOrEqual(4_000_000);
    expect(entries).toBeLessThanOrEqual(1);
  });
});

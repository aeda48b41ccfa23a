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

/**
 * With Redis, L1 charges a value its encoded length. A Buffer decoded as a view into the bytes
 * Redis answered with would keep that whole answer alive: one MGET reply (or a chunk of the
 * parser's pool) for every small value holding a Buffer, far beyond what L1 counted.
 */
describe.skipIf(!redisUp)('L1 byte bound with Buffers read from L2', () => {
  it('a Buffer read from L2 holds its own bytes, not the reply it arrived in', async () => {
    const writer = await open({ bus: false });
    const keys = Array.from({ length: 20 }, (_, index) => `buffer:${index}`);
    // The reply to the MGET below arrives in one socket read (under 64 KiB).
    await writer.set('buffer:filler', 'x'.repeat(30_000));
    for (const [index, key] of keys.entries())
      await writer.set(key, { index, bytes: Buffer.from([1, 2, index]) });
    const reader = await open({ bus: false });
    const read = await reader.getMany<{ index: number; bytes: Buffer } | string>(['buffer:filler', ...keys]);
    for (const [index, value] of read.slice(1).entries()) {
      const { bytes } = value as { index: number; bytes: Buffer };
      expect(Buffer.isBuffer(bytes)).toBe(true);
      expect([...bytes]).toEqual([1, 2, index]);
      expect(bytes.buffer.byteLength).toBeLessThan(1_024);
    }
    const single = await (await open({ bus: false })).get<{ bytes: Buffer }>('buffer:3');
    expect(single!.bytes.buffer.byteLength).toBeLessThan(1_024);
  });
});

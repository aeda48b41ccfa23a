import zlib from 'node:zlib';
import fc from 'fast-check';
import { pack } from 'msgpackr';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { type CacheOptions, SerializationError } from '../../src/index.js';
import { redisUp, sharedRedisCaches } from './helpers.js';

const { open, redis, prefix } = sharedRedisCaches('serialization');

const serializers = ['msgpack', 'json'] as const;

describe.skipIf(!redisUp)('serialization on Redis', () => {
  it.each(serializers)(
    '%s: a value that cannot be encoded is refused with a typed error naming the key, and neither tier changes',
    async (serializer) => {
      const cache = await open({ bus: false, serializer });
      const key = `refused-${serializer}`;
      await cache.set(key, 'before');
      const cyclic: Record<string, unknown> = { n: 1 };
      cyclic.self = cyclic;
      for (const bad of [cyclic, { id: Symbol('id') }]) {
        const error = await cache.set(key, bad).catch((caught: unknown) => caught);
        expect(error).toBeInstanceOf(SerializationError);
        expect(error).toMatchObject({
          code: 'NOA_CACHE_SERIALIZATION',
          details: { direction: 'encode', key },
        });
        expect(cache.getLocal(key)).toBe('before');
        const reader = await open({ bus: false, serializer });
        expect(await reader.get(key)).toBe('before');
      }
      const cloning = await open({ bus: false, serializer, l1: { mode: 'clone' } });
      await expect(cloning.set('clone-refused', { run() {} })).rejects.toMatchObject({
        code: 'NOA_CACHE_SERIALIZATION',
        details: { key: 'clone-refused' },
      });
      expect(await redis!.exists(`${prefix}v:clone-refused`)).toBe(0);
    },
  );

  it('bytes under the prefix that do not hold an entry are a miss and a decode error, never a crash', async () => {
    const registry = new Registry();
    const cache = await open({ bus: false, registry });
    // Valid msgpack after a format-1 header, but `tags` is a number.
    await redis!.set(`${prefix}v:foreign`, Buffer.concat([Buffer.from([0x10]), pack([1, 0, -1, -1, 0, 5])]));
    expect(await cache.get('foreign')).toBeUndefined();
    expect(await cache.getMany(['foreign'])).toEqual([undefined]);
    expect(await cache.getOrSet('foreign', () => 'computed')).toBe('computed');
    const errors = await registry.getSingleMetric('noa_cache_manager_errors_total')!.get();
    const decodeErrors = errors.values.find((sample) => sample.labels.operation === 'decode');
    // getOrSet reads L2 again once it holds the lease: three calls, at least three reads.
    expect(decodeErrors?.value).toBeGreaterThanOrEqual(3);
    expect(await redis!.get(`${prefix}v:foreign`)).not.toBeNull(); // replaced by the next write
  });

  it('a compression bomb under the prefix is a counted miss, never an unbounded allocation', async () => {
    // A valid entry whose value is an 80 MiB string: past the default cap of 64 MiB decoded.
    const body = pack(['x'.repeat(80 * 1024 * 1024), 1, -1, -1, 0]);
    const bombs = {
      gzip: [0x11, zlib.gzipSync(body, { level: 1 })],
      brotli: [0x12, zlib.brotliCompressSync(body, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 1 } })],
      zstd: [0x13, zlib.zstdCompressSync(body)],
    } as const;
    const cache = await open({ bus: false, l1: { maxEntries: 1 } });
    for (const [name, [header, compressed]] of Object.entries(bombs)) {
      const errors = cache.stats().l2Errors;
      expect(compressed.length).toBeLessThan(1024 * 1024); // small in Redis
      await redis!.set(`${prefix}v:bomb-${name}`, Buffer.concat([Buffer.from([header]), compressed]));
      expect(await cache.get(`bomb-${name}`)).toBeUndefined();
      expect(cache.stats().l2Errors).toBe(errors + 1);
      expect(await cache.getMany([`bomb-${name}`])).toEqual([undefined]);
      expect(cache.stats().l2Errors).toBe(errors + 2);
      expect(await cache.getOrSet(`bomb-${name}`, () => 'recomputed')).toBe('recomputed');
    }
    const errors = cache.stats().l2Errors;
    // 1 GiB of zeros in 128 concatenated zstd frames: a few KB in Redis.
    const frame = zlib.zstdCompressSync(Buffer.alloc(8 * 1024 * 1024));
    const gigabyte = Buffer.concat([Buffer.from([0x13]), ...Array.from({ length: 128 }, () => frame)]);
    await redis!.set(`${prefix}v:bomb-gigabyte`, gigabyte);
    expect(await cache.get('bomb-gigabyte')).toBeUndefined();
    expect(cache.stats().l2Errors).toBe(errors + 1);
  });

  it('honours compression.maxDecompressedBytes; a value larger than it is stored uncompressed', async () => {
    const compression = { thresholdBytes: 0, maxDecompressedBytes: 1_000_000 };
    const writer = await open({ bus: false, compression });
    const reader = await open({ bus: false, compression, l1: { maxEntries: 1 } });
    await writer.set('under-cap', 'u'.repeat(500_000));
    await writer.set('over-cap', 'o'.repeat(2_000_000));
    expect((await redis!.getBuffer(`${prefix}v:under-cap`))![0]! & 0b111).not.toBe(0);
    expect((await redis!.getBuffer(`${prefix}v:over-cap`))![0]! & 0b111).toBe(0);
    expect(await reader.get('under-cap')).toBe('u'.repeat(500_000));
    expect(await reader.get('over-cap')).toBe('o'.repeat(2_000_000));
    // A value compressed by a writer with a larger cap is a miss here, counted.
    const lenient = await open({ bus: false, compression: { thresholdBytes: 0 } });
    await lenient.set('compressed-big', 'b'.repeat(2_000_000));
    expect((await redis!.getBuffer(`${prefix}v:compressed-big`))![0]! & 0b111).not.toBe(0);
    const before = reader.stats().l2Errors;
    expect(await reader.get('compressed-big')).toBeUndefined();
    expect(reader.stats().l2Errors).toBe(before + 1);
  });

  it('a compressed value truncated or corrupted in Redis is a miss, recomputed by getOrSet', async () => {
    const writer = await open({ bus: false, compression: { thresholdBytes: 0 } });
    const reader = await open({ bus: false, l1: { maxEntries: 1 } });
    for (const damage of ['truncated', 'flipped'] as const) {
      const key = `damaged-${damage}`;
      await writer.set(key, { text: 'x'.repeat(2_000) });
      const bytes = (await redis!.getBuffer(`${prefix}v:${key}`))!;
      expect(bytes[0]! & 0b111).not.toBe(0); // compressed
      const damaged = damage === 'truncated' ? bytes.subarray(0, bytes.length - 4) : Buffer.from(bytes);
      // The compressed body's first byte (zstd's magic number), after the format's header.
      if (damage === 'flipped') damaged[bytes[0]! >> 4 === 4 ? 14 : 1]! ^= 0xff;
      await redis!.set(`${prefix}v:${key}`, damaged);
      expect(await reader.get(key)).toBeUndefined();
      expect(await reader.getOrSet(key, () => 'recomputed')).toBe('recomputed');
    }
  });

  it('round-trips values between msgpack and json caches on one prefix, whichever wrote them', async () => {
    // Writers and readers are distinct instances: every read decodes what Redis holds.
    const configs: CacheOptions[] = serializers.flatMap((serializer) => [
      { serializer, compression: { thresholdBytes: 0 } },
      { serializer },
    ]);
    const writers = await Promise.all(configs.map((config) => open({ bus: false, ...config })));
    const readers = await Promise.all(configs.map((config) => open({ bus: false, ...config })));
    const leaf = fc.oneof(
      fc.string(),
      fc.integer(),
      fc.double({ noNaN: true, noDefaultInfinity: true }).filter((n) => !Object.is(n, -0)),
      fc.boolean(),
      fc.constant(null),
      fc.date({ noInvalidDate: true }),
      fc.bigInt(),
      fc.uint8Array({ maxLength: 16 }).map((bytes) => Buffer.from(bytes)),
      fc.int32Array({ maxLength: 4 }),
    );
    const value = fc.letrec((tie) => ({
      node: fc.oneof({ depthSize: 'small' }, leaf, tie('array'), tie('object'), tie('map'), tie('set')),
      array: fc.array(tie('node'), { maxLength: 4 }),
      object: fc.dictionary(
        fc.string().filter((key) => key !== '__proto__' && key !== '$noa'),
        tie('node'),
        { maxKeys: 4 },
      ),
      map: fc
        .array(fc.tuple(fc.oneof(fc.string(), fc.integer()), tie('node')), { maxLength: 3 })
        .map((pairs) => new Map(pairs)),
      set: fc.array(fc.oneof(fc.string(), fc.integer()), { maxLength: 3 }).map((items) => new Set(items)),
    })).node;
    let round = 0;
    await fc.assert(
      fc.asyncProperty(
        value,
        fc.nat(configs.length - 1),
        fc.nat(configs.length - 1),
        async (written, from, to) => {
          round += 1;
          await writers[from]!.set(`round-${round}`, written);
          expect(await readers[to]!.get(`round-${round}`)).toEqual(written);
        },
      ),
      { numRuns: 60 },
    );
  });
});

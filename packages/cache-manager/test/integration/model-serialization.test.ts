import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';
import { settleBus } from './bus-barrier.js';
import { dropPrefix, Redis, redisUp, redisUrl, testPrefix } from './helpers.js';

/**
 * Property: any value of the supported types, written on one instance, is what the other
 * instance reads from L2, in msgpack and JSON modes, on both sides of the compression
 * threshold, over keys the reader already holds an older value of in L1 (so the write's bus
 * message must evict it first). The bus is settled as in model-two-instances.test.ts: the writer
 * deletes a barrier key and the reader's `onInvalidation` sees it after the write's message.
 * FC_SEED=<seed> replays a failure; FC_RUNS overrides the number of runs.
 */

const THRESHOLD_BYTES = 128;
const numRuns = Number(process.env.FC_RUNS ?? 60);
const seed = process.env.FC_SEED === undefined ? undefined : Number(process.env.FC_SEED);

const leaf = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 12 }),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }).filter((n) => !Object.is(n, -0)),
  fc.boolean(),
  fc.constant(null),
  fc.date({ noInvalidDate: true }),
  fc.bigInt(),
  fc.uint8Array({ maxLength: 24 }).map((bytes) => Buffer.from(bytes)),
  fc.int32Array({ maxLength: 4 }),
  fc.float64Array({ maxLength: 3, noNaN: true }),
);
const node = fc.letrec((tie) => ({
  node: fc.oneof(
    { depthSize: 'small' },
    leaf,
    tie('array'),
    tie('object'),
    tie('record'),
    tie('map'),
    tie('set'),
  ),
  array: fc.array(tie('node'), { maxLength: 4 }),
  object: fc.dictionary(
    fc.string().filter((key) => key !== '__proto__' && key !== '$noa'),
    tie('node'),
    { maxKeys: 4 },
  ),
  // One recurring shape: msgpack's shared structures take it up after two writes.
  record: fc.record({
    id: fc.integer(),
    name: fc.string({ maxLength: 8 }),
    at: fc.date({ noInvalidDate: true }),
  }),
  map: fc
    .array(fc.tuple(fc.oneof(fc.string(), fc.integer()), tie('node')), { maxLength: 3 })
    .map((pairs) => new Map(pairs)),
  set: fc.array(fc.oneof(fc.string(), fc.integer()), { maxLength: 3 }).map((items) => new Set(items)),
})).node;
/** Values around the threshold: a compressible padding puts some above it, some below. */
const value = fc.oneof(
  node,
  fc.record({ payload: node, pad: fc.nat(THRESHOLD_BYTES * 3).map((length) => 'ab'.repeat(length / 2)) }),
);

const base = testPrefix('modelser');
const clients = redisUp ? [new Redis(redisUrl), new Redis(redisUrl)] : [];
afterAll(async () => {
  if (redisUp) await dropPrefix(base);
  for (const client of clients) client.disconnect();
});

describe.skipIf(!redisUp)('serialization property across two instances', () => {
  it.each(['msgpack', 'json'] as const)(
    '%s: a value written on one instance is what the other reads, compressed or not',
    async (serializer) => {
      const prefix = `${base}${serializer}:`;
      const options = { prefix, serializer, compression: { thresholdBytes: THRESHOLD_BYTES } };
      const caches = [
        new Cache({ ...options, redis: clients[0] }),
        new Cache({ ...options, redis: clients[1] }),
      ];
      await Promise.all(caches.map((cache) => cache.ready()));
      const stored = { compressed: 0, plain: 0 };
      let round = 0;
      try {
        await fc.assert(
          fc.asyncProperty(
            value,
            fc.nat(1),
            fc.constantFrom('k0', 'k1', 'k2'),
            async (written, writer, key) => {
              round += 1;
              const from = caches[writer]!;
              const to = caches[1 - writer]!;
              await to.get(key); // the reader's L1 holds the key's older value, if any
              await from.set(key, written);
              await settleBus(from, to, `__barrier:${round}`);
              expect(to.getLocal(key), 'a copy older than the write survived its message').toBeUndefined();
              expect(await to.get(key)).toEqual(written);
              expect(await to.getMany([key])).toEqual([written]);
              const raw = await clients[0]!.getBuffer(`${prefix}v:${key}`);
              if ((raw![0]! & 0b111) !== 0) stored.compressed += 1;
              else stored.plain += 1;
            },
          ),
          { numRuns, seed },
        );
      } finally {
        await Promise.all(caches.map((cache) => cache.close()));
      }
      // The runs crossed the threshold both ways.
      expect(stored.compressed).toBeGreaterThan(0);
      expect(stored.plain).toBeGreaterThan(0);
    },
  );
});

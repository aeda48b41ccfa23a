import type { Redis } from 'ioredis';
import { Packr } from 'msgpackr';
import { readBatchMaxKeys } from '../src/l2/redis-tier.js';
import { msgpackOptions } from '../src/serialization/value-serializer.js';

/** The floor's two halves: fetch-and-decode one key, and decode bytes already fetched. */
export interface Floor {
  fetchAndUnpack: (key: string) => Promise<unknown>;
  unpack: (bytes: Buffer | null) => unknown;
}

/**
 * The floor of any cache that returns decoded objects: our stored bytes fetched the cheapest
 * way we know (the same-turn MGET batching our reads use, without guard, breaker, L1 or
 * entry fields) plus msgpackr's unpack with the same shared structures. Nothing else.
 * `keyPrefix` is the cache's prefix (its structures list), `valuePrefix` where its values live.
 */
export async function mgetAndUnpack(raw: Redis, keyPrefix: string, valuePrefix: string): Promise<Floor> {
  const list = await raw.lrange(`${keyPrefix}__structures`, 0, -1);
  const structures = list.slice(1).map((json) => JSON.parse(json) as string[]);
  const decoder = new Packr({ ...msgpackOptions, structures, maxSharedStructures: 32 });
  let batch: { key: string; resolve: (bytes: Buffer | null) => void; reject: (error: unknown) => void }[] =
    [];
  // Same-turn MGETs of at most readBatchMaxKeys keys, as our reads: several in flight overlap.
  const send = () => {
    const current = batch;
    batch = [];
    if (current.length === 0) return;
    raw.mgetBuffer(...current.map((item) => item.key)).then(
      (values) => {
        for (const [index, item] of current.entries()) item.resolve(values[index] ?? null);
      },
      (error: unknown) => {
        for (const item of current) item.reject(error);
      },
    );
  };
  const fetch = (key: string) =>
    new Promise<Buffer | null>((resolve, reject) => {
      if (batch.length === 0) setImmediate(send);
      batch.push({ key: valuePrefix + key, resolve, reject });
      if (batch.length >= readBatchMaxKeys) send();
    });
  const unpack = (bytes: Buffer | null) => {
    if (!bytes || bytes[0]! >> 4 !== 4 || (bytes[0]! & 0b111) !== 0) throw new Error('not format 4');
    return decoder.unpack(bytes, { start: 14 }) as unknown; // format 4's header (entry-codec.ts)
  };
  return { fetchAndUnpack: async (key) => unpack(await fetch(key)), unpack };
}

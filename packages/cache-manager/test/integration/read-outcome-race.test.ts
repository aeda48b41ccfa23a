import { delay } from '@noa/core';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';
import { dropPrefix, eventually, redisUrl, testPrefix } from './helpers.js';

/**
 * Issue 10: a read's outcome is the read's own. Before, `getOrSet` read its key from L2 and then
 * asked the tier whether Redis was healthy to tell "L2 held nothing" from "the read failed": a
 * process-wide flag, set by whichever call had settled last. Here another call of the same cache
 * (a write whose tag set is not a set: Redis answers WRONGTYPE) fails in the same round trip as
 * the read's miss: the read answered, but the flag said it had failed, and the call skipped the
 * key's lease (stampede protection across instances) and ran the factory beside the lease holder.
 */
const prefix = testPrefix('read-outcome-race');
const clients: Redis[] = [];
const caches: Cache[] = [];
afterAll(async () => {
  await Promise.all(caches.map((cache) => cache.close()));
  for (const client of clients) client.disconnect();
  await dropPrefix(prefix);
});

function connect(): Redis {
  const client = new Redis(redisUrl);
  client.on('error', () => {});
  clients.push(client);
  return client;
}

describe('a getOrSet whose read answered while another call of its cache failed', () => {
  it('takes its key’s lease: the factory runs once across instances', async () => {
    const admin = connect();
    // A tag set that is not a set: every write tagged with it fails (WRONGTYPE).
    await admin.set(`${prefix}__tag:broken`, 'not a set');
    const options = { prefix, lock: { leaseMs: 10_000, timeoutMs: 10_000, pollMs: 10 } };
    const holder = new Cache({ redis: connect(), ...options });
    const other = new Cache({ redis: connect(), ...options });
    caches.push(holder, other);
    await Promise.all([holder.ready(), other.ready()]);
    const runs: string[] = [];
    for (let attempt = 0; attempt < 20; attempt += 1) {
      const key = `cold-${attempt}`;
      let release!: () => void;
      const held = holder.getOrSet(key, async () => {
        runs.push(`holder ${key}`);
        await new Promise<void>((resolve) => {
          release = resolve;
        });
        return 'from holder';
      });
      // The holder has the lease and runs the factory.
      expect(await eventually(() => runs.includes(`holder ${key}`))).toBe(true);
      // In one turn: a write that fails, and the getOrSet's read (a miss), in one round trip.
      // Alternate which goes first.
      const failing = () => other.set(`w-${attempt}`, 'x', { tags: ['broken'] }).catch(() => {});
      if (attempt % 2 === 0) void failing();
      const waiting = other.getOrSet(key, async () => {
        runs.push(`other ${key}`);
        return 'from other';
      });
      if (attempt % 2 === 1) void failing();
      await delay(30);
      release();
      expect(await held).toBe('from holder');
      await waiting;
    }
    expect(runs.filter((run) => run.startsWith('other'))).toEqual([]);
  });
});

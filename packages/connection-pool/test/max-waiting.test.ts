import { ConfigError } from '@noa/core';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { Pool, QueueFullError, type ResourceFactory } from '../src/index.js';

interface Conn {
  id: number;
}

function factory(): ResourceFactory<Conn> {
  let nextId = 0;
  return { create: async () => ({ id: ++nextId }), destroy: async () => {} };
}

async function queueFullCount(registry: Registry, pool: string): Promise<number> {
  const text = await registry.metrics();
  const match = text.match(
    new RegExp(`noa_connection_pool_errors_total\\{pool="${pool}",kind="queue_full"\\} (\\d+)`),
  );
  return match === null ? 0 : Number(match[1]);
}

// mysql2's queueLimit, vertx#143: under overload an unbounded queue only turns a slow server into
// callers that all time out; shedding the surplus at once lets them fail fast (or go elsewhere).
describe('Pool: maxWaiting bounds the queue (load shedding)', () => {
  it('an acquire beyond maxWaiting rejects at once with QueueFullError (NOA_POOL_QUEUE_FULL), counted as queue_full; the queued ones are still served in order', async () => {
    const registry = new Registry();
    const pool = new Pool(factory(), { name: 'shed', max: 1, maxWaiting: 2, registry });
    const held = await pool.acquire();
    const second = pool.acquire();
    const third = pool.acquire();
    const started = performance.now();
    const refused = await pool.acquire().catch((error: unknown) => error);
    expect(performance.now() - started).toBeLessThan(1_000); // at once, not after acquireTimeoutMs
    expect(refused).toBeInstanceOf(QueueFullError);
    expect(refused).toMatchObject({
      code: 'NOA_POOL_QUEUE_FULL',
      details: { pool: 'shed', maxWaiting: 2 },
    });
    expect(pool.stats.waiting).toBe(2);
    expect(await queueFullCount(registry, 'shed')).toBe(1);
    pool.release(held);
    const two = await second;
    expect(two).toBe(held);
    // One left the queue: there is room for one more.
    const fourth = pool.acquire();
    pool.release(two);
    pool.release(await third);
    pool.release(await fourth);
    await pool.close();
  });

  it('counts only callers who wait for a release: those a new connection will serve are not refused (maxWaiting 0 = never queue)', async () => {
    const pool = new Pool(factory(), { max: 2, maxWaiting: 0 });
    // Cold pool: both open a connection each, neither waits for a release.
    const [one, two] = await Promise.all([pool.acquire(), pool.acquire()]);
    await expect(pool.acquire()).rejects.toBeInstanceOf(QueueFullError);
    pool.release(one!);
    // An idle one is free: lent at once.
    const again = await pool.acquire();
    expect(again).toBe(one);
    pool.release(again);
    pool.release(two!);
    await pool.close();
  });

  it('unbounded by default; a negative or fractional bound is refused naming the field', async () => {
    const pool = new Pool(factory(), { max: 1 });
    expect(pool.options.maxWaiting).toBeUndefined();
    const held = await pool.acquire();
    const waiting = Array.from({ length: 50 }, () => pool.acquire());
    expect(pool.stats.waiting).toBe(50);
    pool.release(held);
    for (const wait of waiting) pool.release(await wait);
    await pool.close();
    expect(() => new Pool(factory(), { maxWaiting: -1 })).toThrow(ConfigError);
    expect(() => new Pool(factory(), { maxWaiting: 1.5 })).toThrow(/maxWaiting/);
  });
});

import { ConfigError, ManualClock } from '@noa/core';
import { recordingLogger } from '@noa/testkit';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import {
  AcquireAbortedError,
  AcquireTimeoutError,
  BackendUnavailableError,
  NotBorrowedError,
  Pool,
  PoolClosedError,
} from '../src/index.js';
import { sleep, until } from './poll.js';

function counterFactory(options: { fail?: () => boolean; validate?: (id: number) => boolean } = {}) {
  let nextId = 0;
  const destroyed: number[] = [];
  return {
    destroyed,
    factory: {
      create: async () => {
        if (options.fail?.()) throw new Error('connect ECONNREFUSED');
        nextId += 1;
        return { id: nextId };
      },
      destroy: async (resource: { id: number }) => {
        destroyed.push(resource.id);
      },
      validate: async (resource: { id: number }) => options.validate?.(resource.id) ?? true,
    },
  };
}

describe('Pool', () => {
  it('rejects bad options with a ConfigError naming the field', () => {
    const { factory } = counterFactory();
    expect(() => new Pool(factory, { min: 5, max: 2 })).toThrow(ConfigError);
    try {
      new Pool(factory, { min: 5, max: 2 });
    } catch (error) {
      expect((error as ConfigError).fields).toEqual(['max']);
    }
    expect(() => new Pool(factory, { acquireTimeoutMs: -1 })).toThrow(/acquireTimeoutMs/);
  });

  it('reuses an idle resource (LIFO) and rejects a double release', async () => {
    const { factory } = counterFactory();
    const pool = new Pool(factory, { max: 2 });
    const first = await pool.acquire();
    pool.release(first);
    const again = await pool.acquire();
    expect(again).toBe(first);
    pool.release(again);
    expect(() => pool.release(again)).toThrow(NotBorrowedError);
    await pool.close();
  });

  it('times out a waiter with AcquireTimeoutError within the deadline', async () => {
    const { factory } = counterFactory();
    const pool = new Pool(factory, { max: 1, acquireTimeoutMs: 100 });
    const held = await pool.acquire();
    const started = Date.now();
    await expect(pool.acquire()).rejects.toBeInstanceOf(AcquireTimeoutError);
    expect(Date.now() - started).toBeLessThan(100 + 400);
    pool.release(held);
    expect(pool.stats.waiting).toBe(0);
    await pool.close();
  });

  it('stops waiting when the AbortSignal fires, and the next waiter still gets served', async () => {
    const { factory } = counterFactory();
    const pool = new Pool(factory, { max: 1 });
    const held = await pool.acquire();
    const controller = new AbortController();
    const aborted = pool.acquire({ signal: controller.signal });
    const next = pool.acquire();
    controller.abort(new Error('client went away'));
    await expect(aborted).rejects.toBeInstanceOf(AcquireAbortedError);
    pool.release(held);
    expect(await next).toBe(held);
    pool.release(held);
    await expect(pool.acquire({ signal: AbortSignal.abort() })).rejects.toBeInstanceOf(AcquireAbortedError);
    await pool.close();
  });

  it('serves waiters in arrival order (FIFO)', async () => {
    const { factory } = counterFactory();
    const pool = new Pool(factory, { max: 2 });
    const held = [await pool.acquire(), await pool.acquire()];
    const order: number[] = [];
    const waiters = Array.from({ length: 8 }, (_, index) =>
      pool.acquire().then((resource) => {
        order.push(index);
        return resource;
      }),
    );
    for (let round = 0; round < 8; round += 1) {
      const resource = held.shift()!;
      pool.release(resource);
      held.push(await waiters[round]!);
    }
    expect(order).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    for (const resource of held) pool.release(resource);
    await pool.close();
  });

  it('close() rejects waiters, and reports clients never released with their acquire stack', async () => {
    const { factory, destroyed } = counterFactory();
    const logger = recordingLogger();
    const lines = logger.entries;
    const pool = new Pool(factory, { max: 1, closeTimeoutMs: 50, leakDetectionThresholdMs: 60_000, logger });
    const leaked = await pool.acquire();
    const waiter = pool.acquire().catch((error: unknown) => error);
    const report = await pool.close();
    expect(await waiter).toBeInstanceOf(PoolClosedError);
    expect(report.unreleased).toHaveLength(1);
    expect(report.unreleased[0]!.acquireStack).toMatch(/pool\.test\.ts/);
    expect(destroyed).toContain(leaked.id);
    expect(lines.some((line) => line.message.includes('never released'))).toBe(true);
    await expect(pool.acquire()).rejects.toBeInstanceOf(PoolClosedError);
  });

  it('a resource close() took back may still be released or destroyed by its borrower (ignored)', async () => {
    const { factory, destroyed } = counterFactory();
    const pool = new Pool(factory, { max: 2, closeTimeoutMs: 10 });
    const late = await pool.acquire();
    const broken = await pool.acquire();
    const report = await pool.close();
    expect(report.unreleased).toHaveLength(2);
    expect(destroyed.sort()).toEqual([late.id, broken.id].sort());
    // Work that finishes after close() gave up on it hands its connection back as usual: the
    // borrower did nothing wrong, so it must not get NotBorrowedError instead of its result.
    expect(() => pool.release(late)).not.toThrow();
    expect(() => pool.destroy(broken)).not.toThrow();
    expect(destroyed).toHaveLength(2);
    // Something this pool never lent is still refused.
    expect(() => pool.release({ id: 99 })).toThrow(NotBorrowedError);
    expect(() => pool.release(late)).toThrow(NotBorrowedError);
  });

  it('close() waits for lent resources that come back in time', async () => {
    const { factory } = counterFactory();
    const pool = new Pool(factory, { max: 1, closeTimeoutMs: 2_000 });
    const held = await pool.acquire();
    setTimeout(() => pool.release(held), 20);
    const report = await pool.close();
    expect(report.unreleased).toEqual([]);
  });

  it('logs a leak once, with the acquire site, when a client is held past the threshold', async () => {
    const clock = new ManualClock(1_000);
    const { factory } = counterFactory();
    const logger = recordingLogger();
    const lines = logger.entries;
    const registry = new Registry();
    const pool = new Pool(factory, {
      leakDetectionThresholdMs: 500,
      evictionIntervalMs: 10,
      clock,
      logger,
      registry,
    });
    const held = await pool.acquire();
    clock.advance(600);
    await until(() => lines.some((line) => line.message.includes('leak threshold')));
    await sleep(30);
    const leaks = lines.filter((line) => line.message.includes('leak threshold'));
    expect(leaks).toHaveLength(1);
    expect(String(leaks[0]!.fields?.acquireStack)).toMatch(/pool\.test\.ts/);
    expect(pool.leaks()).toHaveLength(1);
    const metrics = await registry.getSingleMetricAsString('noa_connection_pool_leaks_total');
    expect(metrics).toMatch(/noa_connection_pool_leaks_total\{pool="pool"\} 1/);
    pool.release(held);
    await pool.close();
  });

  it('counts a leak once in leaks_total when close() finds it still held after it was reported', async () => {
    const clock = new ManualClock(1_000);
    const { factory } = counterFactory();
    const logger = recordingLogger();
    const lines = logger.entries;
    const registry = new Registry();
    const pool = new Pool(factory, {
      leakDetectionThresholdMs: 500,
      evictionIntervalMs: 10,
      closeTimeoutMs: 10,
      clock,
      logger,
      registry,
    });
    await pool.acquire(); // leaked: reported at the threshold, then found again by close()
    const late = await pool.acquire();
    clock.advance(600);
    await until(() => lines.filter((line) => line.message.includes('leak threshold')).length === 2);
    pool.release(late);
    await pool.acquire(); // lent after the leak check ran: close() is the first to report it
    const report = await pool.close();
    expect(report.unreleased).toHaveLength(2);
    const text = await registry.getSingleMetricAsString('noa_connection_pool_leaks_total');
    // Two at the threshold plus the one only close() found; the first is not counted twice.
    expect(text).toMatch(/noa_connection_pool_leaks_total\{pool="pool"\} 3/);
  });

  it('fails fast with BackendUnavailableError while the backend is down, then recovers', async () => {
    let down = true;
    const { factory } = counterFactory({ fail: () => down });
    const pool = new Pool(factory, {
      max: 3,
      acquireTimeoutMs: 10_000,
      initialBackoffMs: 50,
      maxBackoffMs: 50,
    });
    const started = Date.now();
    await expect(pool.acquire()).rejects.toBeInstanceOf(BackendUnavailableError);
    await expect(pool.acquire()).rejects.toBeInstanceOf(BackendUnavailableError);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(pool.backendDown).toBe(true);
    down = false;
    await sleep(80);
    let resource = await pool.acquire().catch(() => undefined);
    while (resource === undefined) {
      await sleep(60);
      resource = await pool.acquire().catch(() => undefined);
    }
    expect(pool.backendDown).toBe(false);
    pool.release(resource);
    await pool.close();
  });

  it('keeps min open, evicts idle resources above min, and replaces expired ones', async () => {
    const clock = new ManualClock(0);
    const { factory, destroyed } = counterFactory();
    const pool = new Pool(factory, {
      min: 1,
      max: 4,
      idleTimeoutMs: 1_000,
      maxLifetimeMs: 10_000,
      evictionIntervalMs: 10,
      clock,
    });
    await until(() => pool.stats.idle === 1);
    const held = await Promise.all([pool.acquire(), pool.acquire(), pool.acquire()]);
    for (const resource of held) pool.release(resource);
    expect(pool.stats.idle).toBe(3);
    clock.advance(1_500);
    await until(() => destroyed.length === 2);
    expect(pool.stats.idle).toBe(1);
    clock.advance(10_000);
    await until(() => destroyed.length === 3);
    await until(() => pool.stats.idle === 1);
    await pool.close();
  });

  it('grows toward max under waiters and never beyond', async () => {
    const { factory } = counterFactory();
    const pool = new Pool(factory, { max: 3 });
    const all = Array.from({ length: 10 }, () => pool.acquire());
    await until(() => pool.stats.active === 3);
    expect(pool.stats.active).toBe(3);
    expect(pool.stats.waiting).toBe(7);
    for (const promise of all) pool.release(await promise);
    expect(pool.stats.size).toBe(3);
    await pool.close();
  });

  it('validates on borrow and replaces a resource that fails validation', async () => {
    const bad = new Set<number>();
    const { factory, destroyed } = counterFactory({ validate: (id) => !bad.has(id) });
    const pool = new Pool(factory, { max: 2, validateOnBorrow: true });
    const first = await pool.acquire();
    pool.release(first);
    bad.add(first.id);
    const second = await pool.acquire();
    expect(second.id).not.toBe(first.id);
    expect(destroyed).toContain(first.id);
    pool.release(second);
    await pool.close();
  });

  it('acquire timeouts hold when the wall clock steps back (NTP) while callers wait', async () => {
    const { factory } = counterFactory();
    const pool = new Pool(factory, { max: 1, acquireTimeoutMs: 100 });
    const held = await pool.acquire();
    const realNow = Date.now;
    try {
      const first = pool.acquire();
      const start = realNow();
      // The system clock is stepped back an hour just after the first caller queued.
      Date.now = () => realNow() - 3_600_000;
      const second = pool.acquire();
      await expect(first).rejects.toBeInstanceOf(AcquireTimeoutError);
      await expect(second).rejects.toBeInstanceOf(AcquireTimeoutError);
      expect(realNow() - start).toBeLessThan(5_000);
    } finally {
      Date.now = realNow;
      pool.release(held);
      await pool.close();
    }
  });

  it('validateOnBorrow: an acquire whose validation never answers (frozen server) still times out and aborts, and the next caller is served', async () => {
    let frozen = false;
    const never = new Promise<boolean>(() => {});
    let nextId = 0;
    const factory = {
      create: async () => ({ id: ++nextId }),
      destroy: async () => {},
      validate: async () => (frozen ? never : true),
    };
    const pool = new Pool(factory, { max: 2, validateOnBorrow: true, acquireTimeoutMs: 100 });
    try {
      pool.release(await pool.acquire());
      frozen = true;
      // Its own timeout, shorter than the validation's bound (acquireTimeoutMs), so the order of
      // the two timers is not left to chance.
      await expect(pool.acquire({ timeoutMs: 30 })).rejects.toBeInstanceOf(AcquireTimeoutError);
      const controller = new AbortController();
      const aborted = pool.acquire({ signal: controller.signal, timeoutMs: 60_000 });
      controller.abort(new Error('client went away'));
      await expect(aborted).rejects.toBeInstanceOf(AcquireAbortedError);
      frozen = false;
      // The validation that never answered counts as failed after acquireTimeoutMs: its
      // resource is closed and the next caller gets a new one.
      const served = await pool.acquire();
      expect(served.id).toBeGreaterThan(1);
      pool.release(served);
    } finally {
      await pool.close();
    }
  });

  it('validateOnBorrow: callers are served in arrival order while a validation is in flight', async () => {
    let release: (ok: boolean) => void = () => {};
    let gate: Promise<boolean> | undefined;
    let nextId = 0;
    const factory = {
      create: async () => ({ id: ++nextId }),
      destroy: async () => {},
      validate: async () => (gate === undefined ? true : gate),
    };
    const pool = new Pool(factory, { max: 1, validateOnBorrow: true });
    try {
      pool.release(await pool.acquire());
      gate = new Promise<boolean>((resolve) => {
        release = resolve;
      });
      const order: string[] = [];
      const first = pool.acquire().then((resource) => {
        order.push('first');
        return resource;
      });
      const second = pool.acquire().then((resource) => {
        order.push('second');
        return resource;
      });
      gate = undefined;
      release(false); // the idle connection failed its check: the first caller gets a new one
      pool.release(await first);
      pool.release(await second);
      expect(order).toEqual(['first', 'second']);
    } finally {
      await pool.close();
    }
  });

  it('invalidate() closes a broken idle resource; destroy() replaces a lent one for waiters', async () => {
    const { factory, destroyed } = counterFactory();
    const pool = new Pool(factory, { max: 1 });
    const first = await pool.acquire();
    pool.release(first);
    pool.invalidate(first);
    expect(destroyed).toContain(first.id);
    const second = await pool.acquire();
    const waiter = pool.acquire();
    pool.destroy(second);
    const third = await waiter;
    expect(third.id).toBeGreaterThan(second.id);
    pool.release(third);
    await pool.close();
  });

  it('drain() serves queued waiters, rejects new callers, then closes everything', async () => {
    const { factory, destroyed } = counterFactory();
    const pool = new Pool(factory, { max: 1 });
    const held = await pool.acquire();
    const queued = pool.acquire();
    const draining = pool.drain();
    await expect(pool.acquire()).rejects.toBeInstanceOf(PoolClosedError);
    pool.release(held);
    pool.release(await queued);
    await draining;
    expect(destroyed).toEqual([held.id]);
  });

  it('drain() completes when the resources it waits for are destroyed (broken) instead of released', async () => {
    const { factory, destroyed } = counterFactory();
    const pool = new Pool(factory, { max: 2 });
    const broken = await pool.acquire();
    const other = await pool.acquire();
    let drained = false;
    const draining = pool.drain().then(() => {
      drained = true;
    });
    pool.release(other);
    pool.destroy(broken); // the last one out
    // Bounded so the failure reads as a hang, not a test timeout.
    await Promise.race([draining, sleep(2_000)]);
    expect(drained).toBe(true);
    expect(destroyed.sort()).toEqual([broken.id, other.id].sort());

    // Same when the last one is released after its connection broke (invalidate while lent).
    const second = new Pool(counterFactory().factory, { max: 1 });
    const invalid = await second.acquire();
    const secondDrain = second.drain();
    second.invalidate(invalid);
    second.release(invalid);
    expect(await Promise.race([secondDrain.then(() => 'drained'), sleep(2_000)])).toBe('drained');
  });

  it('close() during a drain() settles the drain too (drain, then close after a grace period)', async () => {
    const { factory } = counterFactory();
    const pool = new Pool(factory, { max: 1, closeTimeoutMs: 10 });
    await pool.acquire(); // never released
    const draining = pool.drain().then(() => 'drained');
    const report = await pool.close();
    expect(report.unreleased).toHaveLength(1);
    // Bounded so the failure reads as a hang, not a test timeout.
    expect(await Promise.race([draining, sleep(2_000).then(() => 'hung')])).toBe('drained');
  });

  it('a close() while another is in progress reports and counts each unreleased resource once', async () => {
    const { factory } = counterFactory();
    const logger = recordingLogger();
    const lines = logger.entries;
    const registry = new Registry();
    const pool = new Pool(factory, { max: 1, closeTimeoutMs: 20, logger, registry });
    await pool.acquire(); // never released
    // e.g. an explicit close() and an `await using` disposal of the same pool
    const [first, second] = await Promise.all([pool.close(), pool.close()]);
    expect(first.unreleased.length + second.unreleased.length).toBe(1);
    expect(lines.filter((line) => line.message.includes('never released'))).toHaveLength(1);
    expect(await registry.getSingleMetricAsString('noa_connection_pool_leaks_total')).toMatch(
      /noa_connection_pool_leaks_total\{pool="pool"\} 1/,
    );
  });

  it('a second drain() waits for the drain in progress instead of resolving at once', async () => {
    const { factory } = counterFactory();
    const pool = new Pool(factory, { max: 1 });
    const held = await pool.acquire();
    const first = pool.drain();
    let secondDone = false;
    const second = pool.drain().then(() => {
      secondDone = true;
    });
    await sleep(20);
    expect(secondDone).toBe(false);
    pool.release(held);
    await Promise.all([first, second]);
    expect(pool.stats.size).toBe(0);
  });

  it('exports occupancy and acquire-time metrics', async () => {
    const registry = new Registry();
    const { factory } = counterFactory();
    const pool = new Pool(factory, { name: 'metrics', max: 2, registry });
    const held = await pool.acquire();
    const text = await registry.metrics();
    expect(text).toMatch(/noa_connection_pool_active_connections\{pool="metrics"\} 1/);
    expect(text).toMatch(/noa_connection_pool_acquire_duration_seconds_count\{pool="metrics"\} 1/);
    pool.release(held);
    expect(await registry.metrics()).toMatch(/noa_connection_pool_idle_connections\{pool="metrics"\} 1/);
    await pool.close();
  });
});

describe('Pool metrics after close', () => {
  /** Values of the pool's series, by metric name without the prefix. */
  async function series(registry: Registry): Promise<Record<string, number>> {
    const values: Record<string, number> = {};
    for (const line of (await registry.metrics()).split('\n')) {
      const match = /^noa_connection_pool_(\w+)\{pool="closing"\} (\S+)$/.exec(line);
      if (match) values[match[1]!] = Number(match[2]);
    }
    return values;
  }

  it('close() and drain() leave no connection counted as active or idle, and count each one destroyed', async () => {
    for (const shutdown of ['close', 'drain'] as const) {
      const registry = new Registry();
      const { factory } = counterFactory();
      const pool = new Pool(factory, { name: 'closing', max: 3, closeTimeoutMs: 10, registry });
      const held = [await pool.acquire(), await pool.acquire(), await pool.acquire()];
      pool.release(held[0]!);
      pool.release(held[1]!);
      if (shutdown === 'drain') pool.release(held[2]!);
      expect(await series(registry)).toMatchObject({ active_connections: shutdown === 'drain' ? 0 : 1 });
      await (shutdown === 'close' ? pool.close() : pool.drain());
      expect(pool.stats).toMatchObject({ active: 0, idle: 0, size: 0 });
      expect(await series(registry)).toMatchObject({
        active_connections: 0,
        idle_connections: 0,
        waiting_requests: 0,
        connections_created_total: 3,
        connections_destroyed_total: 3,
      });
    }
  });
});

describe('Pool idle validation', () => {
  it('validates idle resources on each eviction run and replaces the ones that fail', async () => {
    const bad = new Set<number>();
    const { factory, destroyed } = counterFactory({ validate: (id) => !bad.has(id) });
    const pool = new Pool(factory, { min: 1, max: 2, validateIdle: true, evictionIntervalMs: 10 });
    await until(() => pool.stats.idle === 1);
    const first = await pool.acquire();
    pool.release(first);
    bad.add(first.id);
    await until(() => destroyed.includes(first.id));
    await until(() => pool.stats.idle === 1);
    const next = await pool.acquire();
    expect(next.id).not.toBe(first.id);
    pool.release(next);
    await pool.close();
  });
});

import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AcquireTimeoutError,
  BackendUnavailableError,
  PoolClosedError,
  QueryTimeoutError,
} from '../../src/index.js';
import { createMongoPool, type MongoPool } from '../../src/mongo.js';
import {
  type PrivateFerretdb,
  privateFerretdbSkipReason,
  startPrivateFerretdb,
} from './helpers/private-ferretdb.js';
import { waitFor } from './helpers/wait.js';

/**
 * For checks this file does not test the deadline of: a first check connects, which on a loaded
 * machine can take longer than the default 500 ms.
 */
const patient = { timeoutMs: 5_000 };

const skip = privateFerretdbSkipReason();
if (skip) console.log(skip);

/** The value of one series of `name` (labels as prom-client prints them), or undefined. */
async function sample(
  registry: Registry,
  name: string,
  labels = '{pool="mongo"}',
): Promise<number | undefined> {
  const text = await registry.metrics();
  const line = text.split('\n').find((row) => row.startsWith(`${name}${labels} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

/** Sum of `noa_connection_pool_errors_total` over every kind for the `mongo` pool. */
async function errorsTotal(registry: Registry): Promise<number> {
  const text = await registry.metrics();
  return text
    .split('\n')
    .filter((row) => row.startsWith('noa_connection_pool_errors_total{pool="mongo",'))
    .reduce((sum, row) => sum + Number(row.split(' ')[1]), 0);
}

async function gauges(registry: Registry) {
  return {
    active: await sample(registry, 'noa_connection_pool_active_connections'),
    idle: await sample(registry, 'noa_connection_pool_idle_connections'),
    waiting: await sample(registry, 'noa_connection_pool_waiting_requests'),
  };
}

describe.skipIf(skip !== undefined)('MongoPool against a private FerretDB', () => {
  let server: PrivateFerretdb | undefined;
  let pool: MongoPool | undefined;

  afterEach(async () => {
    server?.resume();
    await pool?.close();
    await server?.stop();
    server = undefined;
    pool = undefined;
  });

  it('reports occupancy, acquire time and timeouts under more concurrent operations than max', async () => {
    server = await startPrivateFerretdb('load');
    const registry = new Registry();
    // Not 300 ms: 12 inserts queued on 2 connections waited past it on a loaded machine.
    pool = createMongoPool({ url: server.url, name: 'mongo', max: 2, acquireTimeoutMs: 3_000, registry });
    const client = await pool.connect();
    const items = pool.db().collection<{ n: number }>('items');
    let mostActive = 0;
    client.on('connectionCheckedOut', () => {
      mostActive = Math.max(mostActive, pool?.stats.active ?? 0);
    });

    await Promise.all(Array.from({ length: 12 }, (_, n) => items.insertOne({ n })));
    expect(await items.countDocuments()).toBe(12);
    expect(mostActive).toBeLessThanOrEqual(2);
    expect(pool.stats.size).toBeLessThanOrEqual(2);
    // 12 inserts + the count: every checkout is one acquire observation.
    expect(
      await sample(registry, 'noa_connection_pool_acquire_duration_seconds_count'),
    ).toBeGreaterThanOrEqual(13);
    expect(await gauges(registry)).toEqual({ active: 0, idle: pool.stats.size, waiting: 0 });

    // A frozen server holds both connections for as long as it is frozen, so the waiters
    // behind them wait out acquireTimeoutMs deterministically.
    await server.freeze();
    const holders = [items.insertOne({ n: 100 }), items.insertOne({ n: 101 })];
    // Awaited below; handled now so an early failure does not also report them as unhandled.
    for (const holder of holders) holder.catch(() => {});
    await waitFor(() => pool?.stats.active === 2);
    const waiters = Array.from({ length: 3 }, (_, n) => pool?.run(() => items.insertOne({ n: 200 + n })));
    await waitFor(() => pool?.stats.waiting === 3);
    expect(await gauges(registry)).toEqual({ active: 2, idle: 0, waiting: 3 });
    for (const waiter of waiters) {
      const error = await waiter?.catch((rejected: unknown) => rejected);
      expect(error).toBeInstanceOf(AcquireTimeoutError);
      expect((error as AcquireTimeoutError).code).toBe('NOA_POOL_ACQUIRE_TIMEOUT');
    }
    expect(await sample(registry, 'noa_connection_pool_acquire_timeouts_total')).toBe(3);
    expect(await gauges(registry)).toEqual({ active: 2, idle: 0, waiting: 0 });

    server.resume();
    await Promise.all(holders);
    expect(await gauges(registry)).toEqual({ active: 0, idle: 2, waiting: 0 });
    expect(await items.countDocuments()).toBe(14);
  });

  it('fails fast while the server is killed, says unhealthy, and recovers after a restart', async () => {
    server = await startPrivateFerretdb('failfast');
    const registry = new Registry();
    const serverSelectionTimeoutMs = 500;
    pool = createMongoPool({ url: server.url, name: 'mongo', max: 4, serverSelectionTimeoutMs, registry });
    await pool.connect();
    const items = pool.db().collection<{ n: number; pad: string }>('items');
    await items.insertOne({ n: 0, pad: '' });

    // Big batches so some are still on the wire when the server dies.
    const pad = 'x'.repeat(2_000);
    const inFlight = Array.from({ length: 6 }, (_, n) =>
      pool
        ?.run(() => items.insertMany(Array.from({ length: 2_000 }, () => ({ n, pad }))))
        .then(
          () => 'done',
          (error: unknown) => (error instanceof BackendUnavailableError ? 'unavailable' : String(error)),
        ),
    );
    await server.kill();
    const outcomes = await Promise.all(inFlight);
    expect(outcomes).toContain('unavailable');
    for (const outcome of outcomes) expect(['done', 'unavailable']).toContain(outcome);

    const started = Date.now();
    const error = await pool.run(() => items.findOne({})).catch((rejected: unknown) => rejected);
    expect(error).toBeInstanceOf(BackendUnavailableError);
    expect(Date.now() - started).toBeLessThan(serverSelectionTimeoutMs + 5_000);
    const health = await pool.health(patient);
    expect(health.healthy).toBe(false);
    expect(health.error).toBeDefined();
    // Failed checkouts (`checkout_connection_error`) and, when the driver clears it, `pool_cleared`.
    expect(await errorsTotal(registry)).toBeGreaterThanOrEqual(1);
    expect(await gauges(registry)).toEqual({ active: 0, idle: pool.stats.idle, waiting: 0 });

    await server.restart();
    await waitFor(async () => (await pool?.health())?.healthy === true);
    await items.insertOne({ n: 1, pad: '' });
    expect(await items.countDocuments({ n: 1 })).toBe(1);
  });

  it('health() answers unhealthy within serverSelectionTimeoutMs while the server is frozen', async () => {
    server = await startPrivateFerretdb('frozen');
    const serverSelectionTimeoutMs = 400;
    const frozenPool = createMongoPool({ url: server.url, serverSelectionTimeoutMs });
    pool = frozenPool;
    await frozenPool.connect();
    expect((await frozenPool.health(patient)).healthy).toBe(true);
    await server.freeze();
    // A deadline test with a generous bound: the ping must not wait for the frozen server.
    const deadline = new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 10_000).unref());
    // No reused answer, and longer than the ping's own deadline, which is what this test is about.
    const health = await Promise.race([frozenPool.health({ maxAgeMs: 0, timeoutMs: 5_000 }), deadline]);
    expect(health).not.toBe('hung');
    // Down as an unreachable server is (the ping's own deadline is serverSelectionTimeoutMs):
    // the code a dashboard pages on, not a bare text.
    expect(health).toMatchObject({ healthy: false, errorCode: 'NOA_POOL_BACKEND_UNAVAILABLE' });
    expect((health as { error?: string }).error).toMatch(/timeout/i);
    server.resume();
    await waitFor(async () => (await frozenPool.health({ maxAgeMs: 0 })).healthy);
  });

  it('health() of a frozen server gives BackendUnavailable on an idle and on a new connection, queryTimeoutMs set or not', async () => {
    server = await startPrivateFerretdb('frozencode');
    const frozen = server;
    const serverSelectionTimeoutMs = 400;
    // min 1: one idle connection exists before the freeze; max 2: a second ping opens a new one.
    const plain = createMongoPool({ url: frozen.url, name: 'plain', serverSelectionTimeoutMs, min: 1 });
    const timed = createMongoPool({
      url: frozen.url,
      name: 'timed',
      serverSelectionTimeoutMs,
      queryTimeoutMs: 5_000,
    });
    try {
      for (const each of [plain, timed]) {
        await each.connect();
        expect((await each.health(patient)).healthy).toBe(true);
      }
      await frozen.freeze();
      const deadline = () =>
        new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 10_000).unref());
      // No reused answer, and longer than the ping's own deadline, which is what this test is about.
      const fresh = { maxAgeMs: 0, timeoutMs: 5_000 };
      // One after the other (concurrent calls share one ping): the first ping's connection is
      // closed when it times out, so the second has no idle one and waits on a handshake that
      // never ends.
      const checks = await Promise.race([
        (async () => [await plain.health(fresh), await plain.health(fresh), await timed.health(fresh)])(),
        deadline(),
      ]);
      expect(checks).not.toBe('hung');
      for (const health of checks as Awaited<ReturnType<MongoPool['health']>>[]) {
        expect(health).toMatchObject({ healthy: false, errorCode: 'NOA_POOL_BACKEND_UNAVAILABLE' });
      }
    } finally {
      frozen.resume();
      await plain.close();
      await timed.close();
    }
  });

  it('queryTimeoutMs bounds an operation already sent to a frozen server: QueryTimeoutError, then serves after resume', async () => {
    server = await startPrivateFerretdb('deadline');
    const registry = new Registry();
    const queryTimeoutMs = 500;
    const timed = createMongoPool({ url: server.url, name: 'mongo', queryTimeoutMs, registry });
    pool = timed;
    await timed.connect();
    const items = timed.db().collection<{ n: number }>('items');
    await items.insertOne({ n: 0 });
    await server.freeze();

    // Deadline tests with a generous bound: each call must end near queryTimeoutMs, not when
    // the frozen server answers (never) or the driver's 30 s connect timeout passes.
    const bound = queryTimeoutMs + 4_000;
    const hung = () => new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), bound).unref());
    const outcome = (call: Promise<unknown>) =>
      Promise.race([
        call.then(
          () => 'answered',
          (error: unknown) => error,
        ),
        hung(),
      ]);

    // A read on the idle connection (the driver would retry it on a fresh one), a write, and
    // a read given the deadline's signal, which the driver then abandons itself.
    const read = await outcome(timed.run(() => items.findOne({ n: 0 })));
    const write = await outcome(timed.run(() => items.insertOne({ n: 1 })));
    const signalled = await outcome(timed.run((signal) => items.findOne({ n: 0 }, { signal })));
    for (const error of [read, write, signalled]) {
      expect(error).toBeInstanceOf(QueryTimeoutError);
      expect((error as QueryTimeoutError).code).toBe('NOA_POOL_QUERY_TIMEOUT');
      expect((error as QueryTimeoutError).details).toMatchObject({
        server: 'mongo',
        timeoutMs: queryTimeoutMs,
      });
    }
    expect(
      await sample(registry, 'noa_connection_pool_errors_total', '{pool="mongo",kind="query_timeout"}'),
    ).toBe(3);

    server.resume();
    await waitFor(async () =>
      timed
        .run(() => items.findOne({ n: 0 }))
        .then(
          (found) => found?.n === 0,
          () => false,
        ),
    );
    expect(await timed.run(() => items.countDocuments({ n: 0 }))).toBe(1);
    expect((await timed.health(patient)).healthy).toBe(true);
  });

  it('close() with operations in flight settles them, zeroes the gauges and stays closed', async () => {
    server = await startPrivateFerretdb('close');
    const registry = new Registry();
    // min = max: both connections exist before the freeze (a handshake to a frozen server hangs).
    const closing = createMongoPool({
      url: server.url,
      name: 'mongo',
      min: 2,
      max: 2,
      acquireTimeoutMs: 1_000,
      registry,
    });
    pool = closing;
    await closing.connect();
    await waitFor(() => closing.stats.size === 2);
    const items = closing.db().collection<{ n: number }>('items');
    await server.freeze();
    const inFlight = Array.from({ length: 5 }, (_, n) => closing.run(() => items.insertOne({ n })));
    for (const operation of inFlight) operation.catch(() => {});
    await waitFor(() => closing.stats.active === 2 && closing.stats.waiting === 3);

    await closing.close();
    for (const operation of inFlight) {
      const error = await operation.then(
        () => undefined,
        (rejected: unknown) => rejected,
      );
      expect(error).toBeInstanceOf(PoolClosedError);
    }
    expect(await gauges(registry)).toEqual({ active: 0, idle: 0, waiting: 0 });
    expect(closing.stats).toMatchObject({ active: 0, idle: 0, waiting: 0, size: 0 });

    expect(() => closing.db()).toThrow(PoolClosedError);
    expect(() => closing.readDb()).toThrow(PoolClosedError);
    await expect(closing.connect()).rejects.toBeInstanceOf(PoolClosedError);
    await expect(closing.run(() => Promise.resolve(1))).rejects.toBeInstanceOf(PoolClosedError);
    server.resume();
    const health = await closing.health();
    expect(health.healthy).toBe(false);
    // health() must not reopen a closed pool: no connection appears.
    expect(closing.stats.size).toBe(0);
    expect(await gauges(registry)).toEqual({ active: 0, idle: 0, waiting: 0 });
  });

  it('run() passes ordinary server errors through unchanged', async () => {
    server = await startPrivateFerretdb('passthrough');
    pool = createMongoPool({ url: server.url });
    await pool.connect();
    const items = pool.db().collection<{ _id: number }>('items');
    await items.insertOne({ _id: 1 });
    const error = await pool.run(() => items.insertOne({ _id: 1 })).catch((rejected: unknown) => rejected);
    expect((error as { code?: number }).code).toBe(11000);
    expect(error).not.toBeInstanceOf(AcquireTimeoutError);
  });
});

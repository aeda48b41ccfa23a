import { isReachable, recordingLogger, serviceUrl, sparePort, uniqueName } from '@noa/testkit';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMongoPool, type MongoPool } from '../../src/mongo.js';

/**
 * For checks this file does not test the deadline of: a first check connects, which on a loaded
 * machine can take longer than the default 500 ms.
 */
const patient = { timeoutMs: 5_000 };

const url = serviceUrl('mongo');
const reachable = await isReachable('mongo');
if (!reachable) console.log(`skipped: no MongoDB at ${url}`);

describe.skipIf(!reachable)('MongoPool over the driver pool', () => {
  const registry = new Registry();
  const database = uniqueName('cp_mongo');
  let pool: MongoPool;

  beforeAll(async () => {
    pool = createMongoPool({ url, max: 4, registry, name: 'mongo', readYourWritesMs: 300 });
    await pool.connect();
  });

  afterAll(async () => {
    await pool
      ?.db(database)
      .dropDatabase()
      .catch(() => {});
    await pool?.close();
  });

  it('writes through the primary, reads with the read preference, and reports health', async () => {
    const items = pool.db(database).collection<{ name: string }>('items');
    await items.insertOne({ name: 'a' });
    expect(await pool.readDb(database).collection('items').countDocuments()).toBe(1);
    expect(pool.readDb(database).readPreference?.mode).toBe('secondaryPreferred');
    const health = await pool.health(patient);
    expect(health.healthy).toBe(true);
  });

  it('pins a session that wrote to the primary for the read-your-writes window', async () => {
    pool.noteWrite('user-7');
    expect(pool.readDb(database, { session: 'user-7' }).readPreference?.mode).toBe('primary');
    expect(pool.readDb(database, { session: 'user-8' }).readPreference?.mode).toBe('secondaryPreferred');
    await new Promise((resolve) => setTimeout(resolve, 350));
    expect(pool.readDb(database, { session: 'user-7' }).readPreference?.mode).toBe('secondaryPreferred');
  });

  it('exposes the driver pool as active/idle/acquire-time metrics', async () => {
    await Promise.all(
      Array.from({ length: 8 }, (_, index) =>
        pool
          .db(database)
          .collection('items')
          .insertOne({ name: `n${index}` }),
      ),
    );
    const text = await registry.metrics();
    expect(text).toMatch(/noa_connection_pool_acquire_duration_seconds_count\{pool="mongo"\} [1-9]/);
    expect(pool.stats.size).toBeGreaterThan(0);
    expect(pool.stats.size).toBeLessThanOrEqual(4 + 1);
    expect(pool.stats.active).toBe(0);
  });
});

describe('MongoPool without a server', () => {
  it('fails fast: connect() rejects and health() is unhealthy within serverSelectionTimeoutMs', async () => {
    const pool = createMongoPool({
      url: `mongodb://127.0.0.1:${await sparePort()}/none`,
      serverSelectionTimeoutMs: 300,
    });
    const started = Date.now();
    await expect(pool.connect()).rejects.toThrow();
    const health = await pool.health(patient);
    expect(health.healthy).toBe(false);
    expect(Date.now() - started).toBeLessThan(300 * 2 + 2_000);
    expect(() => pool.db()).toThrow(/connect\(\)/);
    await pool.close();
  });
});

/** Why the replica-set cases cannot run against `url`, or undefined when it is a replica set. */
async function replicaSetSkipReason(): Promise<string | undefined> {
  if (!reachable) return `skipped: no MongoDB at ${url}`;
  const probe = createMongoPool({ url, serverSelectionTimeoutMs: 2_000 });
  try {
    const hello = await (await probe.connect()).db('admin').command({ hello: 1 });
    if (typeof hello.setName !== 'string' || !Array.isArray(hello.hosts) || hello.hosts.length < 2)
      return `skipped: ${url} is not a replica set with a secondary (FerretDB is a standalone server): secondary reads and read-your-writes routing to a real primary are not exercised`;
    return undefined;
  } finally {
    await probe.close();
  }
}

const replicaSetSkip = await replicaSetSkipReason();
if (replicaSetSkip) console.log(replicaSetSkip);

describe.skipIf(replicaSetSkip !== undefined)('MongoPool on a replica set', () => {
  it('reads from a secondary, and from the primary inside the read-your-writes window', async () => {
    const database = uniqueName('cp_mongo_rs');
    const pool = createMongoPool({ url, readYourWritesMs: 60_000, driverOptions: { monitorCommands: true } });
    try {
      const client = await pool.connect();
      const findsAt: string[] = [];
      client.on('commandStarted', (event) => {
        if (event.commandName === 'find') findsAt.push(event.address);
      });
      const primary = String((await pool.db('admin').command({ hello: 1 })).primary);
      await pool
        .db(database)
        .collection('items')
        .insertOne({ n: 1 }, { writeConcern: { w: 'majority' } });

      await pool.readDb(database).collection('items').findOne({});
      pool.noteWrite('user-7');
      await pool.readDb(database, { session: 'user-7' }).collection('items').findOne({});
      expect(findsAt).toHaveLength(2);
      expect(findsAt[0]).not.toBe(primary);
      expect(findsAt[1]).toBe(primary);
    } finally {
      await pool
        .db(database)
        .dropDatabase()
        .catch(() => {});
      await pool.close();
    }
  });
});

describe.skipIf(!reachable)('MongoPool log lines', () => {
  it("carry component: 'connection-pool' and the pool name", async () => {
    const logger = recordingLogger();
    const lines = logger.entries;
    const pool = createMongoPool({ url, max: 1, name: 'mongo-logs', logger });
    try {
      const client = await pool.connect();
      // The driver's own event, as it emits it when a server is marked unknown.
      client.emit('connectionPoolCleared', { address: 'test', interruptInUseConnections: false } as never);
      expect(lines.map((line) => line.message)).toContain(
        'mongo connection pool cleared (server marked unknown)',
      );
      for (const line of lines)
        expect(line.fields).toMatchObject({ component: 'connection-pool', pool: 'mongo-logs' });
    } finally {
      await pool.close();
    }
  });
});

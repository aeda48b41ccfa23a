import { isReachable, serviceUrl, sparePort, uniqueName } from '@noa/testkit';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMongoPool, type MongoPool } from '../../src/index.js';

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
    const health = await pool.health();
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
    const health = await pool.health();
    expect(health.healthy).toBe(false);
    expect(Date.now() - started).toBeLessThan(300 * 2 + 2_000);
    expect(() => pool.db()).toThrow(/connect\(\)/);
    await pool.close();
  });
});

import { ConfigError } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { Pool } from '../src/index.js';
import { createMongoPool } from '../src/mongo.js';
import { createMysqlPool } from '../src/mysql.js';
import { createPgPool, type PgPoolOptions } from '../src/pg.js';
import { createRedisPool } from '../src/redis.js';
import { createDatabasePool, type DatabasePoolOptions } from '../src/sql.js';

function fieldsOf(build: () => unknown): string[] {
  try {
    build();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).fields;
  }
  throw new Error('expected a ConfigError');
}

describe('configuration errors name the field', () => {
  it('no primary', () => {
    expect(fieldsOf(() => createPgPool({} as PgPoolOptions))).toEqual(['primary']);
  });

  it('max < min', () => {
    expect(fieldsOf(() => createPgPool({ primary: 'postgres://x', pool: { min: 5, max: 2 } }))).toEqual([
      'pool.max',
    ]);
    expect(fieldsOf(() => createRedisPool({ redis: 'redis://x', min: 5, max: 2 }))).toEqual(['max']);
    expect(fieldsOf(() => createMongoPool({ url: 'mongodb://x', min: 5, max: 2 }))).toEqual(['max']);
  });

  it('nested and listed fields are named by their path', () => {
    expect(fieldsOf(() => createPgPool({ primary: 'postgres://x', pool: { maxx: 1 } as never }))).toEqual([
      'pool.maxx',
    ]);
    expect(fieldsOf(() => createMysqlPool({ primary: 'mysql://x', pool: { min: -1 } }))).toEqual([
      'pool.min',
    ]);
    expect(fieldsOf(() => createPgPool({ primary: 'postgres://x', writeFunctions: [1] as never }))).toEqual([
      'writeFunctions.0',
    ]);
    expect(fieldsOf(() => createRedisPool({ redis: 'redis://x', pool: { max: 2 } } as never))).toEqual([
      'pool',
    ]);
    expect(fieldsOf(() => createRedisPool({ redis: 'redis://x', healthCheckIntervalMs: 0 }))).toEqual([
      'healthCheckIntervalMs',
    ]);
    expect(fieldsOf(() => createPgPool({ primary: 'postgres://x', registry: {} as never }))).toEqual([
      'registry',
    ]);
  });

  it('unknown driver', () => {
    const options = { driver: 'oracle', primary: 'x' } as unknown as DatabasePoolOptions;
    expect(fieldsOf(() => createDatabasePool(options))).toEqual(['driver']);
  });

  it('unknown option and bad enum', () => {
    expect(fieldsOf(() => createPgPool({ primary: 'x', replicaz: [] } as unknown as PgPoolOptions))).toEqual([
      'replicaz',
    ]);
    expect(
      fieldsOf(() => createPgPool({ primary: 'x', loadBalancing: 'random' } as unknown as PgPoolOptions)),
    ).toEqual(['loadBalancing']);
  });

  it('a URL of another database is refused at construction, not reported later as the server being down', async () => {
    // Each of these reached the server and failed as BackendUnavailableError (which also asks
    // the failover callback for a new primary) instead of naming the field.
    expect(fieldsOf(() => createPgPool({ primary: 'mysql://noa:noa@127.0.0.1:3306/noa' }))).toEqual([
      'primary',
    ]);
    expect(
      fieldsOf(() =>
        createPgPool({ primary: 'postgres://a/app', replicas: ['postgres://b/app', 'redis://c'] }),
      ),
    ).toEqual(['replicas.1']);
    expect(fieldsOf(() => createMysqlPool({ primary: 'postgres://noa@127.0.0.1:5432/noa' }))).toEqual([
      'primary',
    ]);
    expect(fieldsOf(() => createRedisPool({ redis: 'postgres://127.0.0.1:5432' }))).toEqual(['redis']);
    // The schemes each driver reads, and strings that are not URLs, still pass.
    const pools = [
      ...['postgres://a/app', 'postgresql://a/app', 'socket:/var/run/postgresql?db=app', 'x'].map((primary) =>
        createPgPool({ primary }),
      ),
      ...['mysql://a/app', 'mariadb://a/app'].map((primary) => createMysqlPool({ primary })),
      ...['redis://a:6379', 'rediss://a:6380', '/tmp/redis.sock'].map((redis) => createRedisPool({ redis })),
    ];
    await Promise.all(pools.map((pool) => pool.close()));
  });

  it('a valid pool builds without connecting, and closes', async () => {
    const pool = createDatabasePool({ driver: 'pg', primary: 'postgres://127.0.0.1:1/none' });
    expect(pool.route('SELECT 1')).toEqual({ target: 'replica', reason: 'read' });
    expect(pool.health().primary.stats.size).toBe(0);
    await pool.close();
  });
});

describe('MongoPool options', () => {
  it('a url that is not mongodb:// or mongodb+srv:// is refused at construction', () => {
    expect(fieldsOf(() => createMongoPool({ url: 'http://127.0.0.1:27017' }))).toEqual(['url']);
    expect(fieldsOf(() => createMongoPool({ url: '127.0.0.1:27017' }))).toEqual(['url']);
    expect(() => createMongoPool({ url: 'mongodb+srv://cluster.example.net/app' })).not.toThrow();
    // The pool options would silently win over these URI options.
    expect(
      fieldsOf(() => createMongoPool({ url: 'mongodb://a,b/app?replicaSet=rs&maxpoolsize=50' })),
    ).toEqual(['url']);
    expect(() => createMongoPool({ url: 'mongodb://a,b/app?replicaSet=rs&appName=x' })).not.toThrow();
  });

  it('driverOptions may not override the pool settings our options own', () => {
    expect(
      fieldsOf(() => createMongoPool({ url: 'mongodb://x', driverOptions: { maxPoolSize: 50 } })),
    ).toEqual(['driverOptions.maxPoolSize']);
    expect(
      fieldsOf(() => createMongoPool({ url: 'mongodb://x', driverOptions: { waitQueueTimeoutMS: 1 } })),
    ).toEqual(['driverOptions.waitQueueTimeoutMS']);
    // queryTimeoutMs sets the driver's socket timeout.
    expect(
      fieldsOf(() => createMongoPool({ url: 'mongodb://x', driverOptions: { socketTimeoutMS: 1 } })),
    ).toEqual(['driverOptions.socketTimeoutMS']);
    expect(fieldsOf(() => createMongoPool({ url: 'mongodb://x/app?socketTimeoutMS=5' }))).toEqual(['url']);
  });

  it('unknown keys and non-positive timeouts name the field', () => {
    expect(fieldsOf(() => createMongoPool({ url: 'mongodb://x', maxSize: 3 } as never))).toEqual(['maxSize']);
    expect(fieldsOf(() => createMongoPool({ url: 'mongodb://x', acquireTimeoutMs: 0 }))).toEqual([
      'acquireTimeoutMs',
    ]);
    expect(fieldsOf(() => createMongoPool({ url: 'mongodb://x', queryTimeoutMs: 0 }))).toEqual([
      'queryTimeoutMs',
    ]);
    expect(fieldsOf(() => createMongoPool({ url: 'mongodb://x', maxStalenessSeconds: 30 }))).toEqual([
      'maxStalenessSeconds',
    ]);
  });
});

describe('timer options are bounded by the longest timer Node can set', () => {
  // Beyond 2^31-1 ms Node fires a timer after 1 ms: acquireTimeoutMs: 3e9 would time every
  // queued acquire out at once instead of never.
  const tooLong = 2 ** 31;
  it('pool, cluster, Redis and Mongo options refuse a longer one, naming the field', () => {
    expect(
      fieldsOf(
        () => new Pool({ create: async () => ({}), destroy: async () => {} }, { acquireTimeoutMs: tooLong }),
      ),
    ).toEqual(['acquireTimeoutMs']);
    expect(
      fieldsOf(() => createPgPool({ primary: 'postgres://x', pool: { idleTimeoutMs: tooLong } })),
    ).toEqual(['pool.idleTimeoutMs']);
    expect(fieldsOf(() => createPgPool({ primary: 'postgres://x', healthCheckIntervalMs: tooLong }))).toEqual(
      ['healthCheckIntervalMs'],
    );
    expect(fieldsOf(() => createPgPool({ primary: 'postgres://x', connectTimeoutMs: tooLong }))).toEqual([
      'connectTimeoutMs',
    ]);
    expect(fieldsOf(() => createRedisPool({ redis: 'redis://x', queryTimeoutMs: tooLong }))).toEqual([
      'queryTimeoutMs',
    ]);
    expect(
      fieldsOf(() => createMongoPool({ url: 'mongodb://x', serverSelectionTimeoutMs: tooLong })),
    ).toEqual(['serverSelectionTimeoutMs']);
  });

  it('the longest one is accepted', () => {
    const pool = new Pool(
      { create: async () => ({}), destroy: async () => {} },
      { acquireTimeoutMs: 2 ** 31 - 1 },
    );
    void pool.close();
  });
});

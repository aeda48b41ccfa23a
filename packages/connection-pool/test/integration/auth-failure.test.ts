import { isReachable, serviceUrl, startPrivateRedisOrSkip, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendUnavailableError, NoaError } from '../../src/index.js';
import { createMongoPool } from '../../src/mongo.js';
import { createMysqlPool } from '../../src/mysql.js';
import { createPgPool } from '../../src/pg.js';
import { createRedisPool, type RedisPool } from '../../src/redis.js';

/**
 * For checks this file does not test the deadline of: a first check connects, which on a loaded
 * machine can take longer than the default 500 ms.
 */
const patient = { timeoutMs: 5_000 };

/** A wrong password that must show up in no error text, health report or log line. */
const wrong = 'Wr0ng-pa55word';

/** `url` with its password replaced by `password` (and its user by `user`, when given). */
function withCredentials(url: string, password: string, user?: string): string {
  const parsed = new URL(url);
  parsed.password = password;
  if (user !== undefined) parsed.username = user;
  return parsed.toString();
}

/** What `run` rejects with (it must reject). */
async function rejection(run: () => Promise<unknown>): Promise<NoaError> {
  const error = await run().then(
    () => {
      throw new Error('resolved');
    },
    (error: unknown) => error,
  );
  expect(error).toBeInstanceOf(NoaError);
  return error as NoaError;
}

function expectAuthFailure(error: NoaError, serverText: RegExp): void {
  expect(error.code).toBe('NOA_POOL_AUTH_FAILED');
  expect(error).not.toBeInstanceOf(BackendUnavailableError);
  expect(error.message).toMatch(serverText);
  expect(error.message).not.toContain(wrong);
}

function expectAuthHealth(
  health: { healthy: boolean; error?: string; errorCode?: string },
  serverText: RegExp,
) {
  expect(health.healthy).toBe(false);
  expect(health.errorCode).toBe('NOA_POOL_AUTH_FAILED');
  expect(health.error).toMatch(serverText);
  expect(JSON.stringify(health)).not.toContain(wrong);
}

const pgUrl = serviceUrl('postgres');
const pgSkip = (await isReachable('postgres')) ? undefined : `skipped: no Postgres at ${pgUrl}`;
const mysqlUrl = serviceUrl('mysql');
const mysqlSkip = (await isReachable('mysql')) ? undefined : `skipped: no MariaDB at ${mysqlUrl}`;
const redisUrl = serviceUrl('redis');
const redisSkip = (await isReachable('redis')) ? undefined : `skipped: no Redis at ${redisUrl}`;
const mongoUrl = serviceUrl('mongo');
const mongoSkip = (await isReachable('mongo')) ? undefined : `skipped: no MongoDB/FerretDB at ${mongoUrl}`;

describe.skipIf(pgSkip !== undefined)('pg: a wrong password (shared Postgres)', () => {
  it('fails with NOA_POOL_AUTH_FAILED and the server reason (28P01), health() says so', async () => {
    const pool = createPgPool({
      name: uniqueName('pgauth'),
      primary: withCredentials(pgUrl, wrong),
      pool: { max: 1 },
    });
    try {
      const error = await rejection(() => pool.query('SELECT 1'));
      expectAuthFailure(error, /password authentication failed/);
      expect((error.cause as { code?: string }).code).toBe('28P01');
      expectAuthHealth(pool.health().primary, /password authentication failed/);
      expect(pool.health().primary.reason).toBe('down');
    } finally {
      await pool.close();
    }
  });

  it('an unreachable server is still NOA_POOL_BACKEND_UNAVAILABLE, health().error naming the cause', async () => {
    const pool = createPgPool({ primary: 'postgres://noa@127.0.0.1:1/noa', pool: { max: 1 } });
    try {
      const error = await rejection(() => pool.query('SELECT 1'));
      expect(error.code).toBe('NOA_POOL_BACKEND_UNAVAILABLE');
      const health = pool.health().primary;
      expect(health.errorCode).toBe('NOA_POOL_BACKEND_UNAVAILABLE');
      expect(health.error).toMatch(/ECONNREFUSED/);
    } finally {
      await pool.close();
    }
  });
});

describe.skipIf(mysqlSkip !== undefined)('mysql2: a wrong password (shared MariaDB)', () => {
  it('fails with NOA_POOL_AUTH_FAILED and the server reason (ER_ACCESS_DENIED_ERROR)', async () => {
    const pool = createMysqlPool({
      name: uniqueName('myauth'),
      primary: withCredentials(mysqlUrl, wrong),
      pool: { max: 1 },
    });
    try {
      const error = await rejection(() => pool.query('SELECT 1'));
      expectAuthFailure(error, /Access denied/);
      expect((error.cause as { code?: string }).code).toBe('ER_ACCESS_DENIED_ERROR');
      expectAuthHealth(pool.health().primary, /Access denied/);
    } finally {
      await pool.close();
    }
  });
});

describe.skipIf(redisSkip !== undefined)('ioredis: a wrong password (shared Redis, an unknown user)', () => {
  it('fails with NOA_POOL_AUTH_FAILED and WRONGPASS, not "Connection is closed."', async () => {
    const pool = createRedisPool({
      name: uniqueName('redisauth'),
      redis: withCredentials(redisUrl, wrong, uniqueName('nobody')),
    });
    try {
      const error = await rejection(() => pool.use((client) => client.ping()));
      expectAuthFailure(error, /WRONGPASS/);
      expectAuthHealth(pool.health(), /WRONGPASS/);
    } finally {
      await pool.close();
    }
  });
});

// FerretDB v1 (the test service) refuses every SCRAM conversation with the code a wrong
// password gets from MongoDB (18, AuthenticationFailed), its reason naming the mechanism; a real
// MongoDB says "Authentication failed.". Either way the driver's path is the real one: the
// handshake's MongoServerError from connect(), as `cause`.
describe.skipIf(mongoSkip !== undefined)('mongodb: refused credentials (shared MongoDB or FerretDB)', () => {
  it('connect() fails with NOA_POOL_AUTH_FAILED, health() says so with the server reason', async () => {
    const pool = createMongoPool({
      name: uniqueName('mongoauth'),
      url: withCredentials(mongoUrl, wrong, uniqueName('nobody')),
      serverSelectionTimeoutMs: 2_000,
    });
    try {
      const error = await rejection(() => pool.connect());
      expectAuthFailure(error, /Authentication failed|authentication mechanism/);
      expect((error.cause as { code?: number }).code).toBe(18);
      expect((error.cause as Error).name).toBe('MongoServerError');
      expectAuthHealth(await pool.health(patient), /Authentication failed|authentication mechanism/);
      expect((await pool.health(patient)).error).toMatch(/^AuthenticationFailedError: /);
    } finally {
      await pool.close();
    }
  });
});

const privateRedis = await startPrivateRedisOrSkip();

describe.skipIf(privateRedis.skip !== undefined)('ioredis on a private Redis with requirepass', () => {
  const password = 'the-right-one';
  let pools: RedisPool[] = [];

  beforeAll(async () => {
    const admin = new Redis(privateRedis.redis!.url);
    await admin.config('SET', 'requirepass', password);
    admin.disconnect();
  });

  afterAll(async () => {
    await Promise.all(pools.map((pool) => pool.close()));
    pools = [];
    await privateRedis.redis?.stop();
  });

  it('no password: NOA_POOL_AUTH_FAILED with NOAUTH', async () => {
    const pool = createRedisPool({ redis: privateRedis.redis!.url });
    pools.push(pool);
    const error = await rejection(() => pool.use((client) => client.ping()));
    expectAuthFailure(error, /NOAUTH/);
    expectAuthHealth(pool.health(), /NOAUTH/);
  });

  it('a wrong password: NOA_POOL_AUTH_FAILED with WRONGPASS; the right one works', async () => {
    const bad = createRedisPool({ redis: withCredentials(privateRedis.redis!.url, wrong) });
    pools.push(bad);
    const error = await rejection(() => bad.use((client) => client.ping()));
    expectAuthFailure(error, /WRONGPASS/);
    expectAuthHealth(bad.health(), /WRONGPASS/);

    const good = createRedisPool({ redis: withCredentials(privateRedis.redis!.url, password) });
    pools.push(good);
    expect(await good.use((client) => client.ping())).toBe('PONG');
    expect(good.health().healthy).toBe(true);
  });
});

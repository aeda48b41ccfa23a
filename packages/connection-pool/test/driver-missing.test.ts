import { afterEach, describe, expect, it, vi } from 'vitest';
import { DriverNotInstalledError } from '../src/index.js';
import { type PeerName, peerImports } from '../src/lazy-peer.js';
import { createMongoPool } from '../src/mongo.js';
import { createMysqlPool } from '../src/mysql.js';
import { createPgPool } from '../src/pg.js';
import { createRedisPool } from '../src/redis.js';
import { refusedSqlPools } from './refused-pools.js';

// No package is uninstalled: each driver's import is pointed at a package that does not exist,
// which fails as a missing install does (ERR_MODULE_NOT_FOUND).
const originals = { ...peerImports };
function uninstall(name: PeerName): void {
  const specifier = `noa-test-not-installed-${name}`;
  peerImports[name] = () => import(/* @vite-ignore */ specifier);
}

afterEach(() => {
  Object.assign(peerImports, originals);
});

async function failureOf(attempt: () => Promise<unknown>): Promise<Error & { code?: string }> {
  const error = await attempt().then(
    () => undefined,
    (failure: unknown) => failure,
  );
  expect(error).toBeInstanceOf(Error);
  return error as Error & { code?: string };
}

interface SqlPool {
  query(sql: string): Promise<unknown>;
  close(): Promise<unknown>;
}

describe('a driver package that is not installed', () => {
  it.each<[PeerName, () => SqlPool, string]>([
    ['pg', () => createPgPool({ primary: 'postgres://noa:noa@127.0.0.1:1/noa' }), 'npm install pg'],
    ['mysql2', () => createMysqlPool({ primary: 'mysql://noa:noa@127.0.0.1:1/noa' }), 'npm install mysql2'],
  ])(
    '%s: query() rejects with DriverNotInstalledError naming the install command',
    async (name, create, install) => {
      uninstall(name);
      const db = create();
      try {
        const error = await failureOf(() => db.query('SELECT 1'));
        expect(error).toBeInstanceOf(DriverNotInstalledError);
        expect(error.code).toBe('NOA_POOL_DRIVER_NOT_INSTALLED');
        expect((error.cause as { code?: string }).code).toBe('ERR_MODULE_NOT_FOUND');
        expect(error.message).toContain(install);
        // Not an outage: no failover, no "backend unavailable".
        expect(error.message).not.toContain('backend unavailable');
        // Every later call says the same, while the pool backs off.
        expect((await failureOf(() => db.query('SELECT 1'))).code).toBe('NOA_POOL_DRIVER_NOT_INSTALLED');
      } finally {
        await db.close();
      }
    },
  );

  // A dashboard must not page the database team for a deployment mistake: health() says why
  // the pool cannot connect, as the code of the error its callers get (an outage says
  // NOA_POOL_BACKEND_UNAVAILABLE: health-error.test.ts, where the drivers are installed).
  it.each(refusedSqlPools)(
    '%s: health() reports the missing driver, not an unreachable server',
    async (name, create) => {
      uninstall(name);
      const db = create();
      try {
        await failureOf(() => db.query('INSERT INTO t VALUES (1)'));
        await vi.waitFor(() => expect(db.health().replicas[0]!.reason).toBe('down'));
        const { primary, replicas } = db.health();
        expect(primary).toMatchObject({ healthy: false, errorCode: 'NOA_POOL_DRIVER_NOT_INSTALLED' });
        expect(primary.error).toContain(`npm install ${name}`);
        expect(replicas[0]).toMatchObject({ healthy: false, errorCode: 'NOA_POOL_DRIVER_NOT_INSTALLED' });
        expect(replicas[0]!.error).toContain(`npm install ${name}`);
      } finally {
        await db.close();
      }
    },
  );

  it('ioredis: use() rejects with DriverNotInstalledError', async () => {
    uninstall('ioredis');
    const redis = createRedisPool({ redis: 'redis://127.0.0.1:1' });
    try {
      const error = await failureOf(() => redis.use(async (client) => client.ping()));
      expect(error.code).toBe('NOA_POOL_DRIVER_NOT_INSTALLED');
      expect(error.message).toContain('npm install ioredis');
      const health = redis.health();
      expect(health).toMatchObject({ healthy: false, errorCode: 'NOA_POOL_DRIVER_NOT_INSTALLED' });
      expect(health.error).toContain('npm install ioredis');
    } finally {
      await redis.close();
    }
  });

  it('mongodb: connect() rejects with DriverNotInstalledError', async () => {
    uninstall('mongodb');
    const mongo = createMongoPool({ url: 'mongodb://127.0.0.1:1/noa' });
    try {
      const error = await failureOf(() => mongo.connect());
      expect(error.code).toBe('NOA_POOL_DRIVER_NOT_INSTALLED');
      expect(error.message).toContain('npm install mongodb');
      const health = await mongo.health();
      expect(health).toMatchObject({ healthy: false, errorCode: 'NOA_POOL_DRIVER_NOT_INSTALLED' });
      expect(health.error).toContain('npm install mongodb');
    } finally {
      await mongo.close();
    }
  });
});

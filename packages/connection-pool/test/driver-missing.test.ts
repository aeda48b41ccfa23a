import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { PeerName } from '../src/lazy-peer.js';
import type { HealthCheckedPool } from './refused-pools.js';

// No package is uninstalled: each driver's import is pointed at a package that does not exist,
// which fails as a missing install does (ERR_MODULE_NOT_FOUND). A driver is imported once per
// module instance (lazyPeer memoizes it), and unit files may share one module registry (the
// unit project does not isolate files), so every test starts from fresh modules.
let modules: Awaited<ReturnType<typeof freshModules>>;
async function freshModules() {
  vi.resetModules();
  const [index, lazyPeer, mongo, mysql, pg, redis, refused] = await Promise.all([
    import('../src/index.js'),
    import('../src/lazy-peer.js'),
    import('../src/mongo.js'),
    import('../src/mysql.js'),
    import('../src/pg.js'),
    import('../src/redis.js'),
    import('./refused-pools.js'),
  ]);
  return {
    DriverNotInstalledError: index.DriverNotInstalledError,
    peerImports: lazyPeer.peerImports,
    createMongoPool: mongo.createMongoPool,
    createMysqlPool: mysql.createMysqlPool,
    createPgPool: pg.createPgPool,
    createRedisPool: redis.createRedisPool,
    refusedSqlPools: refused.refusedSqlPools,
  };
}
let originals: typeof modules.peerImports;
beforeEach(async () => {
  modules = await freshModules();
  originals = { ...modules.peerImports };
});
// Nothing of this file's pointing survives it: the instances it changed are restored and dropped.
afterEach(() => {
  Object.assign(modules.peerImports, originals);
  vi.resetModules();
});

function uninstall(name: PeerName): void {
  const specifier = `noa-test-not-installed-${name}`;
  modules.peerImports[name] = () => import(/* @vite-ignore */ specifier);
}

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
    ['pg', () => modules.createPgPool({ primary: 'postgres://noa:noa@127.0.0.1:1/noa' }), 'npm install pg'],
    [
      'mysql2',
      () => modules.createMysqlPool({ primary: 'mysql://noa:noa@127.0.0.1:1/noa' }),
      'npm install mysql2',
    ],
  ])(
    '%s: query() rejects with DriverNotInstalledError naming the install command',
    async (name, create, install) => {
      uninstall(name);
      const db = create();
      try {
        const error = await failureOf(() => db.query('SELECT 1'));
        expect(error).toBeInstanceOf(modules.DriverNotInstalledError);
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
  it.each(['pg', 'mysql2'] as const)(
    '%s: health() reports the missing driver, not an unreachable server',
    async (name) => {
      uninstall(name);
      const create = modules.refusedSqlPools.find(([pool]) => pool === name)![1];
      const db: HealthCheckedPool = create();
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
    const redis = modules.createRedisPool({ redis: 'redis://127.0.0.1:1' });
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
    const mongo = modules.createMongoPool({ url: 'mongodb://127.0.0.1:1/noa' });
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

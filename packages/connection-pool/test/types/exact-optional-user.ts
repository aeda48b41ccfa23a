// A user's file, compiled by exact-optional-types.test.ts with `exactOptionalPropertyTypes: true`:
// options read from config or a request, which may be undefined, passed straight through.
import { Pool } from '@noa/connection-pool';
import { createMongoPool } from '@noa/connection-pool/mongo';
import { createMysqlPool } from '@noa/connection-pool/mysql';
import { createPgPool, type PgPoolOptions } from '@noa/connection-pool/pg';
import { createRedisPool } from '@noa/connection-pool/redis';

declare const config: {
  primary: string;
  replicas: string[] | undefined;
  failover: PgPoolOptions['failover'] | undefined;
  max: number | undefined;
  timeoutMs: number | undefined;
};
declare const validate: ((resource: object) => Promise<boolean>) | undefined;
declare const request: { signal: AbortSignal | undefined; session: string | undefined };

export async function user(): Promise<void> {
  const pg = createPgPool({
    primary: config.primary,
    replicas: config.replicas,
    failover: config.failover,
    pool: { max: config.max },
  });
  const client = await pg.connect({ signal: request.signal });
  client.release();
  const conn = await pg.acquire('replica', { signal: request.signal });
  pg.release(conn);
  await pg.query('SELECT 1', [], { signal: request.signal, session: request.session });
  await pg.withTransaction(async () => {}, { signal: request.signal, session: request.session });
  await pg.checkHealth({ timeoutMs: config.timeoutMs });
  await pg.drain({ timeoutMs: config.timeoutMs });

  const mysql = createMysqlPool({ primary: config.primary, replicas: config.replicas });
  const mysqlConn = await mysql.acquire('primary', { signal: request.signal });
  mysql.release(mysqlConn);

  const mongo = createMongoPool({ url: 'mongodb://localhost/app', max: config.max });
  await mongo.health({ timeoutMs: config.timeoutMs });
  mongo.readDb('app', { session: request.session });

  const redis = createRedisPool({ redis: 'redis://localhost', max: config.max });
  await redis.use(async () => {}, { signal: request.signal, timeoutMs: config.timeoutMs });

  const pool = new Pool({ create: async () => ({}), destroy: async () => {}, validate }, { max: config.max });
  const resource = await pool.acquire({ signal: request.signal, timeoutMs: config.timeoutMs });
  pool.release(resource);
  await pool.drain({ timeoutMs: config.timeoutMs });
}

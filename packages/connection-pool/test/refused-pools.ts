import type { ClusterHealth } from '../src/index.js';
import { createMysqlPool } from '../src/mysql.js';
import { createPgPool } from '../src/pg.js';

/** A SQL pool as the health tests use it. */
export interface HealthCheckedPool {
  query(sql: string): Promise<unknown>;
  health(): ClusterHealth;
  close(): Promise<unknown>;
}

/**
 * A pg and a mysql2 pool whose primary and replica are on port 1 (nothing listens: connections
 * are refused), checked every 20 ms: what health() says of an outage, or of a missing driver.
 */
export const refusedSqlPools: [name: 'pg' | 'mysql2', create: () => HealthCheckedPool][] = [
  [
    'pg',
    () =>
      createPgPool({
        primary: 'postgres://noa:noa@127.0.0.1:1/noa',
        replicas: ['postgres://noa:noa@127.0.0.1:1/noa'],
        healthCheckIntervalMs: 20,
      }),
  ],
  [
    'mysql2',
    () =>
      createMysqlPool({
        primary: 'mysql://noa:noa@127.0.0.1:1/noa',
        replicas: ['mysql://noa:noa@127.0.0.1:1/noa'],
        healthCheckIntervalMs: 20,
      }),
  ],
];

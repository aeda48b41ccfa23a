import { parseOptions } from '@noa/core';
import { z } from 'zod';
import { MysqlPool, type MysqlPoolOptions } from './mysql-pool.js';
import { PgPool, type PgPoolOptions } from './pg-pool.js';

/** The SQL drivers a {@link createDatabasePool} call can name. */
export const sqlDrivers = ['pg', 'mysql2'] as const;

const driverSchema = z.object({ driver: z.enum(sqlDrivers) }).loose();

/** Options of {@link createDatabasePool}: a driver name plus that driver's pool options. */
export type DatabasePoolOptions =
  | ({ driver: 'pg' } & PgPoolOptions)
  | ({ driver: 'mysql2' } & MysqlPoolOptions);

/**
 * Creates the pool for the named driver (`pg` or `mysql2`), for configuration-driven setups.
 * An unknown driver throws a `ConfigError` naming `driver`.
 */
export function createDatabasePool(options: { driver: 'pg' } & PgPoolOptions): PgPool;
export function createDatabasePool(options: { driver: 'mysql2' } & MysqlPoolOptions): MysqlPool;
export function createDatabasePool(options: DatabasePoolOptions): PgPool | MysqlPool;
export function createDatabasePool(options: DatabasePoolOptions): PgPool | MysqlPool {
  const { driver } = parseOptions('database pool', driverSchema, options);
  const { driver: _driver, ...rest } = options;
  return driver === 'pg' ? new PgPool(rest as PgPoolOptions) : new MysqlPool(rest as MysqlPoolOptions);
}

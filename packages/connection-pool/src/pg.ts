/**
 * `@noa/connection-pool/pg`: the Postgres pool on `pg` (node-postgres). Its declarations import
 * `pg`'s types (install `@types/pg`); the main entry imports no driver.
 */
export { type PgConnectionConfig, pgDriver } from './drivers/pg-driver.js';
export {
  createPgPool,
  PgPool,
  type PgPoolClient,
  type PgPoolOptions,
  type PgQueryCallback,
  type PgTransaction,
} from './pg-pool.js';

/**
 * `@noa/connection-pool/sql`: `createDatabasePool`, which builds a Postgres or a MySQL pool from
 * a driver name in configuration. Its declarations import both `pg`'s and `mysql2`'s types: an
 * application on one database imports `/pg` or `/mysql` instead.
 */
export { createDatabasePool, type DatabasePoolOptions, sqlDrivers } from './create-database-pool.js';

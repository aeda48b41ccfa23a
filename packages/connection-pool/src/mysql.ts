/**
 * `@noa/connection-pool/mysql`: the MySQL/MariaDB pool on `mysql2/promise`. Its declarations
 * import `mysql2`'s types; the main entry imports no driver.
 */
export { type MysqlConnectionConfig, type MysqlResult, mysqlDriver } from './drivers/mysql-driver.js';
export {
  createMysqlPool,
  MysqlPool,
  type MysqlPoolConnection,
  type MysqlPoolOptions,
  type MysqlQueryOptions,
  type MysqlTransaction,
  type MysqlValues,
} from './mysql-pool.js';

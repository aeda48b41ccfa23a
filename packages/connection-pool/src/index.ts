export {
  acquireOptionsSchema,
  isolationLevels,
  queryOptionsSchema,
  transactionOptionsSchema,
} from './call-options.js';
export {
  type ClusterOptions,
  clusterOptionsSchema,
  type FailoverHandler,
  nodePoolSchema,
} from './cluster-options.js';
export { createDatabasePool, type DatabasePoolOptions, sqlDrivers } from './create-database-pool.js';
export { type MysqlConnectionConfig, type MysqlResult, mysqlDriver } from './drivers/mysql-driver.js';
export { type PgConnectionConfig, pgDriver } from './drivers/pg-driver.js';
export {
  AcquireAbortedError,
  AcquireTimeoutError,
  BackendUnavailableError,
  ConnectionPoolError,
  DriverNotInstalledError,
  NotBorrowedError,
  PoolClosedError,
  QueryTimeoutError,
  TransactionRetryError,
} from './errors.js';
export { createMongoPool, MongoPool, type MongoPoolOptions, mongoPoolOptionsSchema } from './mongo-pool.js';
export { createMysqlPool, MysqlPool, type MysqlPoolOptions, type MysqlTransaction } from './mysql-pool.js';
export {
  createPgPool,
  PgPool,
  type PgPoolClient,
  type PgPoolOptions,
  type PgTransaction,
} from './pg-pool.js';
export { type AcquireOptions, type CloseReport, type LeakReport, Pool, type PoolStats } from './pool.js';
export { type PoolOptions, poolOptionsSchema, type ResourceFactory } from './pool-options.js';
export { createRedisPool, RedisPool, type RedisPoolOptions, redisPoolOptionsSchema } from './redis-pool.js';
export {
  classifyStatement,
  createStatementClassifier,
  defaultWriteFunctions,
  type RouteReason,
  type SqlDialect,
  type StatementRoute,
  type StatementTarget,
} from './routing/classify-statement.js';
export type { LoadBalancing } from './routing/replica-balancer.js';
export {
  type ClusterHealth,
  type QueryOptions,
  type ServerHealth,
  SqlCluster,
  type Transaction,
  type TransactionOptions,
} from './sql-cluster.js';
export type { ConnectSettings, IsolationLevel, SqlDriver } from './sql-driver.js';
export { StatementCache } from './statement-cache.js';

/**
 * `@noa/connection-pool`: what needs no driver (the generic `Pool`, the SQL cluster over any
 * `SqlDriver`, routing, options, errors). Each driver's pool is a subpath (`/pg`, `/mysql`,
 * `/mongo`, `/redis`, and `/sql` for `createDatabasePool`), so that these declarations import no
 * optional peer: a Postgres user compiling with `skipLibCheck: false` needs no mongodb types.
 */
// core's errors our calls throw (bad options), so that catching them needs no import of @noa/core.
export {
  ConfigError,
  type ConfigIssue,
  type HealthReport,
  type HealthStatus,
  type NoaCoreError,
  type NoaCoreErrorCode,
  NoaError,
} from '@noa/core';
export {
  acquireOptionsSchema,
  type DrainOptions,
  drainOptionsSchema,
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
export {
  AcquireAbortedError,
  AcquireTimeoutError,
  type AnyConnectionPoolError,
  AuthenticationFailedError,
  BackendUnavailableError,
  ConnectionPoolError,
  type ConnectionPoolErrorCode,
  DrainTimeoutError,
  DriverNotInstalledError,
  HealthCheckTimeoutError,
  NotBorrowedError,
  PoolClosedError,
  QueryTimeoutError,
  QueueFullError,
  TransactionEndedError,
  TransactionRetryError,
} from './errors.js';
export { type CheckHealthOptions, checkHealthOptionsSchema } from './health.js';
export { type AcquireOptions, type CloseReport, type LeakReport, Pool, type PoolStats } from './pool.js';
export { type PoolOptions, poolOptionsSchema, type ResourceFactory } from './pool-options.js';
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
export type {
  ConnectSettings,
  IsolationLevel,
  SqlDriver,
  StatementSettings,
  StatementValues,
} from './sql-driver.js';
export { StatementCache } from './statement-cache.js';

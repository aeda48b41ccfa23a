export {
  AcquireAbortedError,
  AcquireTimeoutError,
  BackendUnavailableError,
  ConnectionPoolError,
  NotBorrowedError,
  PoolClosedError,
  TransactionRetryError,
} from './errors.js';
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

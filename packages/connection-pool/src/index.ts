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

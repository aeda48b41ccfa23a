// core's errors our calls throw (bad options, use after close), so that catching them needs no
// import of @noa/core.
export {
  ClosedError,
  ConfigError,
  type ConfigIssue,
  type HealthReport,
  type HealthStatus,
  type NoaCoreError,
  type NoaCoreErrorCode,
  NoaError,
} from '@noa/core';
export type { BackendState } from './backend-health.js';
export {
  type Backoff,
  type BackoffInput,
  type BackoffStrategy,
  backoffDelay,
  backoffSchema,
} from './backoff.js';
export { delayBucket } from './delay-bucket.js';
export {
  AddNotConfirmedError,
  type AddNotConfirmedReason,
  type AnyMessageQueueError,
  BackendUnavailableError,
  BrokerRefusedError,
  BrokerUnavailableError,
  DriverNotInstalledError,
  InvalidPayloadError,
  JobCancelledError,
  JobTimeoutError,
  type LeaseLossReason,
  LeaseLostError,
  MessageQueueError,
  type MessageQueueErrorCode,
  MessageTooLargeError,
  ResultNotSerializableError,
  ResultTooLargeError,
  UnsupportedOperationError,
  WorkerClosingError,
} from './errors.js';
export { type JobEventName, jobEvents } from './events.js';
export { pickGroup } from './fair-dispatch.js';
export { Job } from './job.js';
export {
  type ChildFailurePolicy,
  type JobOptions,
  jobOptionsSchema,
  maxDelayMs,
  maxPriority,
  type ParsedJobOptions,
} from './job-options.js';
export type {
  ChildrenResults,
  JobCounts,
  JobErrorEntry,
  JobInfo,
  JobRecord,
  JobState,
  ParentLink,
} from './job-record.js';
export type { Jsonified } from './jsonified.js';
export type {
  CancelOutcome,
  CancelResult,
  DeadLetteredParent,
  ExchangeRequest,
  ExchangeResponse,
  LeasedJob,
  LeaseRenewal,
  MaintenanceResult,
  OversizedSettlement,
  ProviderCapabilities,
  QueueProvider,
  RetentionPolicy,
  Settlement,
  StalledRelease,
  StalledReleaseResult,
} from './provider.js';
export type {
  DeliveryVerdict,
  JobStateStore,
  StateDelivery,
  StateEvent,
  StateExchange,
  StateExchangeResult,
  StatePublish,
} from './providers/job-state-store.js';
export { MemoryProvider } from './providers/memory-provider.js';
export {
  type AddCallOptions,
  type AddResult,
  type JobView,
  type NewFlow,
  type NewJob,
  Queue,
  type QueueOptions,
  queueOptionsSchema,
  type RetentionOptions,
  retentionSchema,
} from './queue.js';
export { nextFireTimes, nextIntervalTime, tickJobId } from './schedule.js';
export { Scheduler, type SchedulerOptions } from './scheduler.js';
export type { StandardSchemaV1 } from './standard-schema.js';
export { Worker, type WorkerEvents, type WorkerOptions, workerOptionsSchema } from './worker.js';

import { NoaError } from '@noa/core';

/** Every error class of this package, told apart by `code` (a `switch` on it narrows the error). */
export type AnyMessageQueueError =
  | InvalidPayloadError
  | UnsupportedOperationError
  | JobCancelledError
  | JobTimeoutError
  | ResultNotSerializableError
  | ResultTooLargeError
  | WorkerClosingError
  | LeaseLostError
  | BrokerUnavailableError
  | BrokerRefusedError
  | MessageTooLargeError
  | BackendUnavailableError
  | AddNotConfirmedError
  | DriverNotInstalledError;

/** The codes of this package's errors: a `MessageQueueError`'s `code` is one of them, so a `switch` on it can be exhaustive. */
export type MessageQueueErrorCode = AnyMessageQueueError['code'];

/** Base class of every error thrown by @noa/message-queue; codes start with `NOA_MQ_`. */
export class MessageQueueError<
  Code extends MessageQueueErrorCode = MessageQueueErrorCode,
> extends NoaError<Code> {}

/** A payload failed the queue's zod schema at `add`; `fields` names every bad field. Nothing was enqueued. */
export class InvalidPayloadError extends MessageQueueError<'NOA_MQ_INVALID_PAYLOAD'> {
  readonly fields: string[];

  constructor(queue: string, issues: { path: string; message: string }[]) {
    const list = issues.map((issue) => `${issue.path || '(root)'}: ${issue.message}`).join('; ');
    super('NOA_MQ_INVALID_PAYLOAD', `Invalid payload for queue ${queue}: ${list}`, {
      details: { queue, issues },
    });
    this.fields = issues.map((issue) => issue.path);
  }
}

/** The provider cannot do what was asked (e.g. `getJob` on RabbitMQ); see its `capabilities`. */
export class UnsupportedOperationError extends MessageQueueError<'NOA_MQ_UNSUPPORTED'> {
  constructor(provider: string, operation: string) {
    super('NOA_MQ_UNSUPPORTED', `${provider} provider does not support ${operation}`, {
      details: { provider, operation },
    });
  }
}

/** The job was cancelled (by `queue.cancel(id)`); the handler's signal aborts with this reason. */
export class JobCancelledError extends MessageQueueError<'NOA_MQ_JOB_CANCELLED'> {
  constructor(jobId: string) {
    super('NOA_MQ_JOB_CANCELLED', `job ${jobId} was cancelled`, { details: { jobId } });
  }
}

/** The handler ran past the job's `timeout`; its signal aborts with this reason and the slot is freed. */
export class JobTimeoutError extends MessageQueueError<'NOA_MQ_JOB_TIMEOUT'> {
  constructor(jobId: string, timeoutMs: number) {
    super('NOA_MQ_JOB_TIMEOUT', `job ${jobId} did not finish within ${timeoutMs} ms`, {
      details: { jobId, timeoutMs },
    });
  }
}

/**
 * A handler resolved to a value JSON cannot carry (a BigInt, a cycle, a throwing `toJSON`), so
 * its result could not be stored: the try fails with this error (`field` is `'result'`) and the
 * job follows its retry / dead-letter path like any failed try.
 */
export class ResultNotSerializableError extends MessageQueueError<'NOA_MQ_RESULT_NOT_SERIALIZABLE'> {
  readonly field = 'result';

  constructor(jobId: string, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(
      'NOA_MQ_RESULT_NOT_SERIALIZABLE',
      `the result of job ${jobId} is not JSON-encodable (${reason}); the try failed`,
      { details: { jobId, field: 'result', reason }, cause },
    );
  }
}

/**
 * A handler's result is larger, JSON-encoded, than the backend takes in one call (Redis: its
 * `proto-max-bulk-len`, 512 MiB by default), so it could not be stored: the try fails with this
 * error and the job follows its retry / dead-letter path like any failed try. Store large results
 * elsewhere and return a reference. `details`: `jobId`, `bytes`, `maxBytes`.
 */
export class ResultTooLargeError extends MessageQueueError<'NOA_MQ_RESULT_TOO_LARGE'> {
  readonly bytes: number;
  readonly maxBytes: number;

  constructor(jobId: string, bytes: number, maxBytes: number) {
    super(
      'NOA_MQ_RESULT_TOO_LARGE',
      `the result of job ${jobId} is ${bytes} bytes encoded, over the ${maxBytes} bytes the backend takes in one call (Redis proto-max-bulk-len); the try failed`,
      { details: { jobId, bytes, maxBytes } },
    );
    this.bytes = bytes;
    this.maxBytes = maxBytes;
  }
}

/** The worker is closing and released the job for redelivery; the handler's signal aborts with this. */
export class WorkerClosingError extends MessageQueueError<'NOA_MQ_WORKER_CLOSING'> {
  constructor(jobId: string) {
    super('NOA_MQ_WORKER_CLOSING', `worker closed before job ${jobId} finished; it was released`, {
      details: { jobId },
    });
  }
}

/** Why a worker gave up a job's lease (see {@link LeaseLostError}). */
export type LeaseLossReason = 'expired' | 'revoked';

/**
 * The worker no longer holds the job's lease, so another worker may run it (at-least-once); the
 * handler's signal aborts with this reason. `reason`: `'expired'`, no renewal was answered
 * within `leaseMs` (the backend is unreachable or frozen, or this process stalled); `'revoked'`,
 * the backend refused the renewal: another run holds the job (its lease expired and it was
 * recovered, or a RabbitMQ redelivery took it over) or the RabbitMQ channel it came on closed.
 * The try's outcome is not reported as a failure: a completion is still offered (and refused
 * if another run holds the job), a failure gives the job back without counting a try.
 */
export class LeaseLostError extends MessageQueueError<'NOA_MQ_LEASE_LOST'> {
  readonly reason: LeaseLossReason;

  constructor(jobId: string, reason: LeaseLossReason) {
    const why =
      reason === 'expired'
        ? 'no lease renewal was answered within leaseMs'
        : 'the backend refused the lease renewal (another run holds the job, or its channel closed)';
    super('NOA_MQ_LEASE_LOST', `lost the lease of job ${jobId}: ${why}`, { details: { jobId, reason } });
    this.reason = reason;
  }
}

/**
 * `RabbitMqProvider.ready()` found no broker within its time limit, or `counts()` got no answer
 * from it within `readyTimeoutMs` (down, or frozen: connected and silent). Names the host (never the
 * credentials) and carries the last connection error, e.g. `ECONNREFUSED` or `ACCESS_REFUSED`.
 * The provider keeps reconnecting in the background.
 */
export class BrokerUnavailableError extends MessageQueueError<'NOA_MQ_BROKER_UNAVAILABLE'> {
  constructor(host: string, timeoutMs: number, lastError: string | undefined) {
    const reason = lastError === undefined ? 'no answer' : lastError;
    super(
      'NOA_MQ_BROKER_UNAVAILABLE',
      `RabbitMQ at ${host} not reachable within ${timeoutMs} ms: ${reason}`,
      {
        details: { host, timeoutMs, lastError },
      },
    );
  }
}

/**
 * RabbitMQ refused an operation on a queue at the channel level (the AMQP reply code, e.g. 406
 * PRECONDITION_FAILED: the queue exists with other arguments, declared by another app or an older
 * version; 405 RESOURCE_LOCKED: an exclusive queue of another connection). Names the queue and
 * carries the broker's reason; the connection stays up, and the same call fails the same way
 * until the queue is fixed (deleted, or declared with the provider's arguments).
 */
export class BrokerRefusedError extends MessageQueueError<'NOA_MQ_BROKER_REFUSED'> {
  constructor(queue: string, operation: string, replyCode: number, reason: string) {
    super('NOA_MQ_BROKER_REFUSED', `RabbitMQ refused to ${operation} queue ${queue}: ${reason}`, {
      details: { queue, operation, replyCode, reason },
    });
  }
}

/**
 * A job's encoded message is larger than RabbitMQ takes (`maxMessageBytes`, by default the
 * broker's default `max_message_size`); refused before anything of the batch was published.
 * Names the queue, the job, the size and the limit.
 */
export class MessageTooLargeError extends MessageQueueError<'NOA_MQ_MESSAGE_TOO_LARGE'> {
  /** @param limit what sets `maxBytes`, for the message (default: RabbitMQ's, the provider's `maxMessageBytes`). */
  constructor(queue: string, jobId: string, bytes: number, maxBytes: number, limit = "the broker's limit") {
    super(
      'NOA_MQ_MESSAGE_TOO_LARGE',
      limit === "the broker's limit"
        ? `job ${jobId} of queue ${queue} is ${bytes} bytes encoded, over the broker's limit of ${maxBytes} bytes (maxMessageBytes)`
        : `job ${jobId} of queue ${queue} is ${bytes} bytes encoded, over ${limit} of ${maxBytes} bytes`,
      { details: { queue, jobId, bytes, maxBytes } },
    );
  }
}

/**
 * A worker's backend did not answer a call (`operation`) within the worker's `backendTimeoutMs`:
 * emitted once as the worker's `error` event when an outage starts (the calls keep waiting, the
 * worker goes on when the backend answers; see `Worker.backendUp`).
 */
export class BackendUnavailableError extends MessageQueueError<'NOA_MQ_BACKEND_UNAVAILABLE'> {
  constructor(queue: string, operation: string, timeoutMs: number) {
    super(
      'NOA_MQ_BACKEND_UNAVAILABLE',
      `the backend of queue ${queue} did not answer ${operation} within ${timeoutMs} ms (backendTimeoutMs); the worker keeps waiting for it`,
      { details: { queue, operation, timeoutMs } },
    );
  }
}

/** Why an add was not confirmed (see {@link AddNotConfirmedError}). */
export type AddNotConfirmedReason = 'timeout' | 'aborted';

/**
 * `add`/`addBulk`/`addFlow` gave up waiting for the backend: its `timeoutMs` (or the queue's
 * `addTimeoutMs`) passed, or its `signal` aborted. Unless `mayBeEnqueued` is false (the signal
 * had aborted before anything was sent), the jobs **may still be enqueued**: the backend may have
 * stored them, or store them when it answers (ioredis sends a waiting command once Redis is
 * back). The queue retries nothing; to add them at most once, retry with the same `jobId`s
 * (`jobIds`: generated ones included), which adds nothing twice (`added: false`).
 */
export class AddNotConfirmedError extends MessageQueueError<'NOA_MQ_ADD_NOT_CONFIRMED'> {
  readonly reason: AddNotConfirmedReason;
  readonly jobIds: string[];
  readonly mayBeEnqueued: boolean;

  constructor(
    queue: string,
    jobIds: string[],
    reason: AddNotConfirmedReason,
    options: { timeoutMs?: number; mayBeEnqueued: boolean; cause?: unknown },
  ) {
    const why =
      reason === 'timeout'
        ? `not confirmed within ${options.timeoutMs} ms (timeoutMs)`
        : 'aborted by its signal';
    const outcome = options.mayBeEnqueued
      ? 'the jobs MAY still be enqueued (the backend may store them when it answers): retry with the same jobId to add them once'
      : 'nothing was sent, nothing is enqueued';
    const ids = jobIds.length > 5 ? `${jobIds.slice(0, 5).join(', ')}, …` : jobIds.join(', ');
    super(
      'NOA_MQ_ADD_NOT_CONFIRMED',
      `add of ${jobIds.length} job(s) to queue ${queue} ${why}: ${outcome} (ids: ${ids})`,
      {
        details: {
          queue,
          jobIds,
          reason,
          timeoutMs: options.timeoutMs,
          mayBeEnqueued: options.mayBeEnqueued,
        },
        cause: options.cause,
      },
    );
    this.reason = reason;
    this.jobIds = jobIds;
    this.mayBeEnqueued = options.mayBeEnqueued;
  }
}

/**
 * An optional peer dependency the provider needs (`amqplib` for `RabbitMqProvider`) could not be
 * found: the message says what to install, the import error is the `cause`. Nothing was sent;
 * the import is tried again at the next call, so installing the package is enough.
 */
export class DriverNotInstalledError extends MessageQueueError<'NOA_MQ_DRIVER_NOT_INSTALLED'> {
  constructor(packageName: string, cause?: unknown) {
    super(
      'NOA_MQ_DRIVER_NOT_INSTALLED',
      `the \`${packageName}\` package is not installed (it is an optional peer dependency of @noa/message-queue): npm install ${packageName}`,
      { cause, details: { package: packageName } },
    );
  }
}

import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  AddNotConfirmedError,
  type AnyMessageQueueError,
  BackendUnavailableError,
  BrokerRefusedError,
  BrokerUnavailableError,
  DriverNotInstalledError,
  InvalidPayloadError,
  JobCancelledError,
  JobTimeoutError,
  LeaseLostError,
  MessageQueueError,
  type MessageQueueErrorCode,
  MessageTooLargeError,
  NoaError,
  ResultNotSerializableError,
  ResultTooLargeError,
  UnsupportedOperationError,
  WorkerClosingError,
} from '../src/index.js';

// Each error class's `code` is a literal type and `MessageQueueErrorCode` is their union, so that
// a `switch (error.code)` narrows the error and can be exhaustive (checked by `tsc`, which failed
// on `code: string`); at run time nothing changed.

const errors = [
  new InvalidPayloadError('q', [{ path: 'id', message: 'required' }]),
  new UnsupportedOperationError('rabbitmq', 'getJob'),
  new JobCancelledError('1'),
  new JobTimeoutError('1', 10),
  new ResultNotSerializableError('1', new Error('cycle')),
  new ResultTooLargeError('1', 20, 10),
  new WorkerClosingError('1'),
  new LeaseLostError('1', 'expired'),
  new BrokerUnavailableError('localhost', 10, undefined),
  new BrokerRefusedError('q', 'declare', 406, 'PRECONDITION_FAILED'),
  new MessageTooLargeError('q', '1', 10, 5),
  new BackendUnavailableError('q', 'fetch', 10),
  new AddNotConfirmedError('q', ['1'], 'timeout', { timeoutMs: 10, mayBeEnqueued: true }),
  new DriverNotInstalledError('amqplib'),
] as const;

function handled(error: AnyMessageQueueError): string {
  switch (error.code) {
    case 'NOA_MQ_LEASE_LOST':
      return `lease ${error.reason}`;
    case 'NOA_MQ_ADD_NOT_CONFIRMED':
      return `maybe ${error.mayBeEnqueued}`;
    case 'NOA_MQ_INVALID_PAYLOAD':
      return `bad ${error.fields.join(', ')}`;
    case 'NOA_MQ_UNSUPPORTED':
    case 'NOA_MQ_JOB_CANCELLED':
    case 'NOA_MQ_JOB_TIMEOUT':
    case 'NOA_MQ_RESULT_NOT_SERIALIZABLE':
    case 'NOA_MQ_RESULT_TOO_LARGE':
    case 'NOA_MQ_WORKER_CLOSING':
    case 'NOA_MQ_BROKER_UNAVAILABLE':
    case 'NOA_MQ_BROKER_REFUSED':
    case 'NOA_MQ_MESSAGE_TOO_LARGE':
    case 'NOA_MQ_BACKEND_UNAVAILABLE':
    case 'NOA_MQ_DRIVER_NOT_INSTALLED':
      return error.code;
    default: {
      const unhandled: never = error;
      return unhandled;
    }
  }
}

describe('@noa/message-queue error codes', () => {
  it('are literal types, and MessageQueueErrorCode is their union', () => {
    expectTypeOf<LeaseLostError['code']>().toEqualTypeOf<'NOA_MQ_LEASE_LOST'>();
    expectTypeOf<MessageQueueErrorCode>().toEqualTypeOf<
      | 'NOA_MQ_INVALID_PAYLOAD'
      | 'NOA_MQ_UNSUPPORTED'
      | 'NOA_MQ_JOB_CANCELLED'
      | 'NOA_MQ_JOB_TIMEOUT'
      | 'NOA_MQ_RESULT_NOT_SERIALIZABLE'
      | 'NOA_MQ_RESULT_TOO_LARGE'
      | 'NOA_MQ_WORKER_CLOSING'
      | 'NOA_MQ_LEASE_LOST'
      | 'NOA_MQ_BROKER_UNAVAILABLE'
      | 'NOA_MQ_BROKER_REFUSED'
      | 'NOA_MQ_MESSAGE_TOO_LARGE'
      | 'NOA_MQ_BACKEND_UNAVAILABLE'
      | 'NOA_MQ_ADD_NOT_CONFIRMED'
      | 'NOA_MQ_DRIVER_NOT_INSTALLED'
    >();
    expectTypeOf<MessageQueueError['code']>().toEqualTypeOf<MessageQueueErrorCode>();
  });

  it('narrow the error by code, and instanceof holds as before', () => {
    expect(errors.map(handled)).toEqual([
      'bad id',
      'NOA_MQ_UNSUPPORTED',
      'NOA_MQ_JOB_CANCELLED',
      'NOA_MQ_JOB_TIMEOUT',
      'NOA_MQ_RESULT_NOT_SERIALIZABLE',
      'NOA_MQ_RESULT_TOO_LARGE',
      'NOA_MQ_WORKER_CLOSING',
      'lease expired',
      'NOA_MQ_BROKER_UNAVAILABLE',
      'NOA_MQ_BROKER_REFUSED',
      'NOA_MQ_MESSAGE_TOO_LARGE',
      'NOA_MQ_BACKEND_UNAVAILABLE',
      'maybe true',
      'NOA_MQ_DRIVER_NOT_INSTALLED',
    ]);
    for (const error of errors) {
      expect(error).toBeInstanceOf(MessageQueueError);
      expect(error).toBeInstanceOf(NoaError);
    }
  });
});

import { describe, expect, it } from 'vitest';
import type { JobRecord } from '../src/index.js';
import type { AmqpConnection } from '../src/providers/rabbitmq/connection.js';
import { RabbitPublisher } from '../src/providers/rabbitmq/publisher.js';
import type { Topology } from '../src/providers/rabbitmq/topology.js';
import { encodeRecord } from '../src/providers/record-codec.js';

// How a failed try's record is cut to fit RabbitMQ's maxMessageBytes (no broker needed: only
// the size rule is exercised, the connection and topology are never touched).
const maxBytes = 1_000;
const publisher = new RabbitPublisher({} as AmqpConnection, {} as Topology, false, maxBytes);
const now = 1_764_000_000_000;
const size = (record: JobRecord) => Buffer.byteLength(encodeRecord(record));

function failed(dataBytes: number, errorMessages: string[]): JobRecord {
  return {
    id: 'job-1',
    name: 'x',
    data: 'd'.repeat(dataBytes),
    priority: 0,
    attempts: 30,
    backoff: { type: 'fixed', delayMs: 0 },
    removeOnComplete: false,
    attemptsMade: errorMessages.length,
    errors: errorMessages.map((message, index) => ({ attempt: index + 1, name: 'Error', message, at: now })),
    createdAt: now - 5_000,
    availableAt: now,
  };
}

describe('RabbitPublisher.fitFailed', () => {
  it('leaves a record that fits alone', () => {
    expect(publisher.fitFailed('q', failed(100, ['small']), now, true)).toBeUndefined();
  });

  it('replaces the last entry and drops older ones until it fits', () => {
    const record = failed(100, ['a'.repeat(300), 'b'.repeat(300), 'c'.repeat(600)]);
    const fitted = publisher.fitFailed('q', record, now, true)!;
    expect(size(fitted)).toBeLessThanOrEqual(maxBytes);
    expect(fitted.errors.at(-1)).toMatchObject({
      name: 'MessageTooLargeError',
      code: 'NOA_MQ_MESSAGE_TOO_LARGE',
      attempt: 3,
    });
    expect(fitted.errors.at(-1)!.message).toContain(
      'dead-lettered instead of retried; its error: Error: ccc',
    );
    expect(fitted.errors.map((entry) => entry.message[0])).not.toContain('a');
  });

  it('cuts the entry message for a job added close to the limit', () => {
    const fitted = publisher.fitFailed('q', failed(700, ['e'.repeat(300)]), now, true)!;
    expect(size(fitted)).toBeLessThanOrEqual(maxBytes);
    expect(fitted.errors).toHaveLength(1);
    expect(fitted.errors[0]).toMatchObject({ name: 'MessageTooLargeError' });
    const { message } = fitted.errors[0]!;
    expect(message.startsWith('job job-1 of queue q is ')).toBe(true);
    expect(message).not.toContain('e'.repeat(300));
  });

  it('leaves the history out when not even an empty entry fits', () => {
    const record = failed(860, ['e'.repeat(300)]);
    const fitted = publisher.fitFailed('q', record, now, false)!;
    expect(fitted.errors).toEqual([]);
    expect(fitted.availableAt).toBe(record.createdAt);
    expect(size(fitted)).toBeLessThanOrEqual(maxBytes);
  });
});

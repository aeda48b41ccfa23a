import type { ConfigError } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { MemoryProvider, Queue, Worker } from '../src/index.js';
import { RabbitMqProvider } from '../src/rabbitmq.js';
import { waitFor } from './helpers.js';

/** Node's longest timer: a longer delay is clamped to 1 ms, so such a timer re-armed or fired every 1 ms. */
const pastLongestTimer = 2 ** 31;

describe('time options past the longest Node timer (~24.8 days)', () => {
  it('rejects a job timeout beyond it at add, naming the field', async () => {
    const queue = new Queue({ name: 'long-timeout', provider: new MemoryProvider() });
    // Before: accepted, and the timeout sweep re-armed a 1 ms timer (with a warning) until the job ended.
    await expect(queue.add('x', null, { timeout: pastLongestTimer })).rejects.toMatchObject({
      fields: ['timeout'],
    });
    expect((await queue.counts()).waiting).toBe(0);
  });

  // Before: accepted; maintenanceIntervalMs 2^31 ran a maintenance pass against the backend every 1 ms.
  it('rejects worker intervals and limits beyond it, naming each field', () => {
    const queue = new Queue({ name: 'long-intervals', provider: new MemoryProvider() });
    const fields: string[] = [];
    for (const option of [
      'leaseMs',
      'defaultTimeoutMs',
      'closeTimeoutMs',
      'pollIntervalMs',
      'maintenanceIntervalMs',
    ] as const) {
      try {
        new Worker({ queue, handler: () => {}, autostart: false, [option]: pastLongestTimer });
      } catch (error) {
        fields.push(...(error as ConfigError).fields);
      }
    }
    expect(fields).toEqual([
      'leaseMs',
      'defaultTimeoutMs',
      'closeTimeoutMs',
      'pollIntervalMs',
      'maintenanceIntervalMs',
    ]);
  });

  it('still runs a job with the longest timeout allowed', async () => {
    const queue = new Queue({ name: 'longest-timeout', provider: new MemoryProvider() });
    await queue.add('x', null, { timeout: pastLongestTimer - 1 });
    const outcomes: string[] = [];
    const worker = new Worker({
      queue,
      handler: async () => {
        await new Promise((resolve) => setTimeout(resolve, 50));
        return 'done';
      },
    });
    worker.on('completed', () => outcomes.push('completed'));
    worker.on('failed', (_id, error) => outcomes.push(error.name));
    await waitFor(() => outcomes.length === 1);
    await worker.close();
    expect(outcomes).toEqual(['completed']);
  });

  it('rejects RabbitMqProvider time options beyond it, and a URL that is not AMQP, naming each field', () => {
    const fieldsOf = (options: ConstructorParameters<typeof RabbitMqProvider>[0]): string[] => {
      try {
        new RabbitMqProvider(options);
      } catch (error) {
        return (error as ConfigError).fields;
      }
      return [];
    };
    const url = 'amqp://guest:guest@127.0.0.1:5672';
    expect(fieldsOf({ url, closeTimeoutMs: pastLongestTimer })).toEqual(['closeTimeoutMs']);
    expect(fieldsOf({ url, readyTimeoutMs: pastLongestTimer })).toEqual(['readyTimeoutMs']);
    expect(fieldsOf({ url, connectTimeoutMs: pastLongestTimer })).toEqual(['connectTimeoutMs']);
    expect(fieldsOf({ url, maxReconnectDelayMs: pastLongestTimer })).toEqual(['maxReconnectDelayMs']);
    // Past 60 s the longest delay's x-expires would pass 2^32 - 1; under 2 s renewals would flood.
    expect(fieldsOf({ url, delayQueueIdleMs: 60_001 })).toEqual(['delayQueueIdleMs']);
    expect(fieldsOf({ url, delayQueueIdleMs: 1_999 })).toEqual(['delayQueueIdleMs']);
    expect(fieldsOf({ url, delayQueueIdleMs: 2_000 })).toEqual([]);
    // Before: accepted, then retried for ever in the background (every add just waited).
    expect(fieldsOf({ url: 'http://127.0.0.1:15672' })).toEqual(['url']);
    expect(fieldsOf({ url: 'amqps://broker.example:5671' })).toEqual([]);
  });
});

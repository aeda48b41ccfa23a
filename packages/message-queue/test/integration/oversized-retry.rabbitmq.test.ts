import diagnosticsChannel from 'node:diagnostics_channel';
import { isReachable, recordingLogger, serviceUrl, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Queue, type QueueProvider, Worker } from '../../src/index.js';
import { encodeRecord } from '../../src/providers/record-codec.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { RedisJobStateStore } from '../../src/redis.js';
import { sleep, waitFor } from '../helpers.js';

// A failed try whose record, its error added, no longer fits maxMessageBytes cannot be retried
// (the broker would refuse the message): it is dead-lettered once with a MessageTooLargeError
// entry, with or without a job state store, and the worker goes on with other jobs.
const url = serviceUrl('rabbitmq');
const redisUrl = serviceUrl('redis');
const reachable = (await isReachable('rabbitmq')) && (await isReachable('redis'));
if (!reachable) console.log(`skipped: no RabbitMQ at ${url} or no Redis at ${redisUrl}`);

const maxMessageBytes = 2_048;
const outboxTimeoutMs = 500;
/** An error whose entry alone is over `maxMessageBytes`. */
const bigError = () => new Error(`boom ${'e'.repeat(4_000)}`);

describe.skipIf(!reachable)('RabbitMQ: a retry grown past maxMessageBytes', () => {
  const connections: Redis[] = [];
  const providers: RabbitMqProvider[] = [];
  const workers: Worker<unknown, unknown>[] = [];
  const queues: [RabbitMqProvider, string][] = [];
  /** What the providers warned about (a refused publish says so at every outbox pass). */
  const logger = recordingLogger();
  const open = ({ state = true } = {}) => {
    const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
    connections.push(connection);
    const provider = new RabbitMqProvider({
      url,
      maxMessageBytes,
      logger,
      // Short outbox timeout, so an outbox republish loop would show within the test's window.
      ...(state && {
        state: new RedisJobStateStore({ connection, prefix: uniqueName('oversized'), outboxTimeoutMs }),
      }),
    });
    providers.push(provider);
    const name = uniqueName('oversized');
    queues.push([provider, name]);
    return new Queue<{ n: number }>({ name, provider });
  };
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((worker) => worker.close(500)));
  });
  afterAll(async () => {
    for (const [provider, name] of queues) await provider.deleteQueue(name);
    await Promise.all(providers.map((provider) => provider.close()));
    await Promise.all(connections.map((connection) => connection.quit()));
  });

  it('with a state store: is dead-lettered once in the store with a MessageTooLargeError entry; the worker goes on', async () => {
    const queue = open();
    const tries = new Map<number, number>();
    const errors: string[] = [];
    // When each of the worker's maintenance passes (where the outbox republishes) began, once done.
    const passes: number[] = [];
    const counting = new Proxy(queue.provider, {
      get: (target, key) => {
        const value = Reflect.get(target, key, target) as unknown;
        if (typeof value !== 'function') return value;
        if (key !== 'maintain') return value.bind(target);
        return async (...args: Parameters<QueueProvider['maintain']>) => {
          const startedAt = Date.now();
          const result = await target.maintain(...args);
          passes.push(startedAt);
          return result;
        };
      },
    });
    const worker = new Worker({
      queue: new Queue<{ n: number }>({ name: queue.name, provider: counting }),
      maintenanceIntervalMs: 200,
      handler: (job) => {
        tries.set(job.data.n, (tries.get(job.data.n) ?? 0) + 1);
        if (job.data.n === 1) throw bigError();
        return 'ok';
      },
    });
    workers.push(worker as Worker<unknown, unknown>);
    worker.on('error', (error: Error) => errors.push(error.message));
    const { id } = await queue.add('big', { n: 1 }, { attempts: 5, backoff: { type: 'fixed', delayMs: 0 } });
    // Before: its retry was stored, its publish refused, and republished from the outbox at
    // every maintenance pass (a warning each time), the job waiting for ever and never
    // dead-lettered. Waited for (a loaded broker or Redis is slow), not assumed within 5 s.
    await waitFor(async () => (await queue.counts()).failed === 1, 20_000, 'the oversized job dead-lettered');
    // Then two whole maintenance passes after anything the failure stored was due for the outbox
    // (outboxTimeoutMs after it): a republish loop would have warned by then.
    const due = Date.now() + outboxTimeoutMs;
    await waitFor(
      () => passes.filter((startedAt) => startedAt > due).length >= 2,
      20_000,
      'two maintenance passes after the outbox timeout',
    );
    expect(tries.get(1)).toBe(1);
    expect(logger.messages('warn').filter((warning) => warning.includes('publish failed'))).toEqual([]);
    expect(await queue.counts()).toMatchObject({ waiting: 0, delayed: 0, active: 0, failed: 1 });
    const [dead] = await queue.dlq.list();
    expect(dead).toMatchObject({ id, state: 'failed', attemptsMade: 1, data: { n: 1 } });
    const last = dead!.errors.at(-1)!;
    expect(last).toMatchObject({
      attempt: 1,
      name: 'MessageTooLargeError',
      code: 'NOA_MQ_MESSAGE_TOO_LARGE',
    });
    expect(last.message).toContain('boom e');
    // The worker goes on: a later job runs and completes.
    const completed = new Promise((resolve) => worker.once('completed', resolve));
    await queue.add('small', { n: 2 });
    await completed;
    expect(tries.get(2)).toBe(1);
    expect(errors).toEqual([]);
    // A redrive publishes the fitted record (no MessageTooLargeError on the way back).
    expect(await queue.dlq.retry(id)).toBe(true);
    await waitFor(() => (tries.get(1) ?? 0) === 2, 5_000, 'the redriven job to run');
  }, 60_000);

  // Before: the worker reported what it had asked for (a retry: willRetry true, `retried`
  // counted and published) although the provider had dead-lettered the job.
  it.each([
    { mode: 'AMQP only', state: false },
    { mode: 'state store', state: true },
  ])(
    '$mode: the failed event, metrics and diagnostics events say dead-lettered, not retried',
    async ({ state }) => {
      const queue = open({ state });
      const registry = new Registry();
      const published: string[] = [];
      const listeners = Object.fromEntries(
        ['failed', 'retried', 'dead-lettered'].map((event) => [
          event,
          (message: unknown) => {
            if ((message as { queue: string }).queue === queue.name) published.push(event);
          },
        ]),
      );
      for (const [event, listener] of Object.entries(listeners))
        diagnosticsChannel.subscribe(`noa:message-queue:${event}`, listener);
      try {
        const failures: { id: string; message: string; willRetry: boolean }[] = [];
        const worker = new Worker({
          queue,
          registry,
          handler: (job) => {
            if (job.data.n === 1) throw bigError();
            throw new Error('small');
          },
        });
        workers.push(worker as Worker<unknown, unknown>);
        worker.on('failed', (id, error, willRetry) =>
          failures.push({ id, message: error.message, willRetry }),
        );
        const big = await queue.add('big', { n: 1 }, { attempts: 5, backoff: { type: 'fixed', delayMs: 0 } });
        // A job that does retry, as a control: one retry, then dead after its 2 attempts.
        const small = await queue.add(
          'small',
          { n: 2 },
          { attempts: 2, backoff: { type: 'fixed', delayMs: 0 } },
        );
        await waitFor(() => failures.length === 3, 10_000, 'three failed events');
        await sleep(300);
        expect(failures.filter((failure) => failure.id === big.id)).toEqual([
          { id: big.id, message: expect.stringContaining('boom e'), willRetry: false },
        ]);
        expect(
          failures.filter((failure) => failure.id === small.id).map((failure) => failure.willRetry),
        ).toEqual([true, false]);
        const text = await registry.metrics();
        expect(text).toContain(`noa_message_queue_jobs_failed_total{queue="${queue.name}"} 3`);
        expect(text).toContain(`noa_message_queue_jobs_retried_total{queue="${queue.name}"} 1`);
        expect(text).toContain(`noa_message_queue_jobs_dead_lettered_total{queue="${queue.name}"} 2`);
        expect(published.filter((event) => event === 'failed')).toHaveLength(3);
        expect(published.filter((event) => event === 'retried')).toHaveLength(1);
        expect(published.filter((event) => event === 'dead-lettered')).toHaveLength(2);
        expect((await queue.counts()).failed).toBe(2);
      } finally {
        for (const [event, listener] of Object.entries(listeners))
          diagnosticsChannel.unsubscribe(`noa:message-queue:${event}`, listener);
      }
    },
  );

  // A job added 200 bytes under the limit: its 300-byte error puts its retry over it, and so
  // does the MessageTooLargeError entry quoting that error, so the entry is cut to fit. Before:
  // AMQP only, its dead-letter was refused too (MessageTooLargeError from every exchange
  // carrying it), the worker running nothing else; with a store, its dead record could not be
  // redriven (the publish refused at every outbox pass).
  it.each([
    { mode: 'AMQP only', state: false },
    { mode: 'state store', state: true },
  ])(
    '$mode: a job added just under the limit that fails is dead-lettered, its entry cut to fit',
    async ({ state }) => {
      const queue = open({ state });
      const id = uniqueName('near');
      const options = { jobId: id, attempts: 3, backoff: { type: 'fixed' as const, delayMs: 0 } };
      // One time for both fields and both calls: a record whose availableAt equals its createdAt
      // is encoded 18 bytes shorter, so two Date.now() reads a millisecond apart changed the size.
      const now = Date.now();
      const sizeWith = (text: string) =>
        Buffer.byteLength(
          encodeRecord({
            id,
            name: 'near',
            data: { n: 1, text },
            priority: 0,
            attempts: options.attempts,
            backoff: options.backoff,
            removeOnComplete: false,
            attemptsMade: 0,
            errors: [],
            createdAt: now,
            availableAt: now,
          }),
        );
      const text = 't'.repeat(maxMessageBytes - 200 - sizeWith(''));
      expect(sizeWith(text)).toBe(maxMessageBytes - 200);
      const errors: string[] = [];
      const failures: boolean[] = [];
      const completed: string[] = [];
      const worker = new Worker({
        queue,
        handler: (job) => {
          if (job.data.n === 1) throw new Error(`boom ${'e'.repeat(300)}`);
          return 'ok';
        },
      });
      workers.push(worker as Worker<unknown, unknown>);
      worker.on('error', (error: Error) => errors.push(error.message));
      worker.on('failed', (_id, _error, willRetry) => failures.push(willRetry));
      worker.on('completed', (jobId) => completed.push(jobId));
      await queue.add('near', { n: 1, text } as never, options);
      await waitFor(() => failures.length === 1, 10_000, 'the failed event');
      await queue.add('small', { n: 2 });
      await waitFor(() => completed.length === 1, 10_000, 'the next job to complete');
      expect(failures).toEqual([false]);
      expect(errors).toEqual([]);
      expect((await queue.counts()).failed).toBe(1);
      if (state) {
        const [dead] = await queue.dlq.list();
        expect(dead?.errors.at(-1)).toMatchObject({
          name: 'MessageTooLargeError',
          code: 'NOA_MQ_MESSAGE_TOO_LARGE',
        });
        // Its record fits the broker: a redrive publishes it and it runs (and fails) again.
        expect(await queue.dlq.retry(id)).toBe(true);
        await waitFor(() => failures.length === 2, 10_000, 'the redriven job to run again');
        expect(logger.messages('warn').filter((warning) => warning.includes('publish failed'))).toEqual([]);
      }
    },
  );
});

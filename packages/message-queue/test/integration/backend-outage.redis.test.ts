import { recordingLogger, startPrivateRedisOrSkip, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { AddNotConfirmedError, MemoryProvider, Queue, Worker } from '../../src/index.js';
import { RedisProvider } from '../../src/redis.js';
import { sleep, waitFor } from '../helpers.js';

// One private redis-server for the file, stopped (SIGKILL) and restarted by each test; the tests
// run one after another, and each leaves it running.
const privateRedis = await startPrivateRedisOrSkip();

async function gauge(registry: Registry, name: string, labels: Record<string, string>): Promise<number[]> {
  const metric = await registry.getSingleMetric(name)?.get();
  return (metric?.values ?? [])
    .filter((value) => Object.entries(labels).every(([key, wanted]) => value.labels[key] === wanted))
    .map((value) => value.value);
}

describe.skipIf(privateRedis.skip !== undefined)('Redis outage (private redis-server stopped)', () => {
  const server = privateRedis.redis!;
  const connections: Redis[] = [];
  const connect = (): Redis => {
    const connection = new Redis(server.url, { maxRetriesPerRequest: null });
    connection.on('error', () => {});
    connections.push(connection);
    return connection;
  };
  // Whether a test left the server stopped (it failed before restarting it).
  let stopped = false;
  const stopServer = async () => {
    await server.kill();
    stopped = true;
  };
  const startServer = async () => {
    await server.restart();
    stopped = false;
  };
  const startIfStopped = async () => {
    if (stopped) await startServer();
  };
  afterAll(async () => {
    for (const connection of connections) connection.disconnect();
    await server.stop();
  });

  it('the worker emits one error and warns when Redis stops answering, shows it in backend_up, and logs the recovery', async () => {
    const provider = new RedisProvider({ connection: connect() });
    const registry = new Registry();
    const logger = recordingLogger();
    const queue = new Queue({ name: uniqueName('outage-worker'), provider });
    const done: string[] = [];
    const errors: Error[] = [];
    const worker = new Worker({
      queue,
      registry,
      logger,
      pollIntervalMs: 100,
      backendTimeoutMs: 500,
      handler: (job) => {
        done.push(job.id);
      },
    });
    worker.on('error', (error) => errors.push(error));
    try {
      await queue.add('before', null);
      await waitFor(() => done.length === 1, 5_000, 'a job run while Redis is up');
      expect(await gauge(registry, 'noa_message_queue_backend_up', { queue: queue.name })).toEqual([1]);
      expect(worker.backendUp).toBe(true);

      await stopServer();
      // The first error comes once an exchange has gone 500 ms unanswered: waited for, not
      // assumed within the outage below (a loaded machine stretches it).
      await waitFor(() => errors.length > 0, 10_000, 'the worker to report Redis unavailable');
      // Many polls and exchanges' worth of outage: still one error event.
      await sleep(3_000);
      expect(errors.map((error) => (error as Error & { code?: string }).code)).toEqual([
        'NOA_MQ_BACKEND_UNAVAILABLE',
      ]);
      expect(errors[0]!.message).toMatch(/did not answer .* within 500 ms/);
      expect(logger.lines('warn').filter((line) => line.includes('backend unavailable'))).toHaveLength(1);
      expect(await gauge(registry, 'noa_message_queue_backend_up', { queue: queue.name })).toEqual([0]);
      expect(worker.backendUp).toBe(false);

      await startServer();
      await waitFor(() => worker.backendUp, 10_000, 'the worker to see Redis back');
      expect(logger.messages('info').filter((line) => line.includes('backend available again'))).toHaveLength(
        1,
      );
      expect(await gauge(registry, 'noa_message_queue_backend_up', { queue: queue.name })).toEqual([1]);
      await queue.add('after', null);
      await waitFor(() => done.length === 2, 5_000, 'a job run after the restart');
      expect(errors).toHaveLength(1);
    } finally {
      await startIfStopped();
      await worker.close(0);
      await provider.close();
    }
  }, 30_000);

  it('backend_up is absent until a worker knows, the minimum over the workers of the queue on one registry, and loses each closed worker', async () => {
    const provider = new RedisProvider({ connection: connect() });
    const registry = new Registry();
    const name = uniqueName('outage-up');
    const up = () => gauge(registry, 'noa_message_queue_backend_up', { queue: name });
    const options = { registry, pollIntervalMs: 50, backendCloseTimeoutMs: 500, handler: () => {} };
    await stopServer();
    // Started against a Redis that is already down.
    // backendTimeoutMs 3 s: the "absent while unknown" read below comes well inside it even when a
    // loaded machine stretches the 300 ms wait (with 1 s, a stretched wait found it down already).
    const onRedis = new Worker({ queue: new Queue({ name, provider }), backendTimeoutMs: 3_000, ...options });
    let onMemory: Worker | undefined;
    try {
      await sleep(300);
      expect(onRedis.backendState).toBe('unknown');
      expect(await up()).toEqual([]);
      await waitFor(() => onRedis.backendState === 'down', 10_000, 'the worker to find Redis down');
      expect(await up()).toEqual([0]);

      // A second worker of the queue whose backend answers does not hide the first one's outage.
      onMemory = new Worker({ queue: new Queue({ name, provider: new MemoryProvider() }), ...options });
      // Up once its first exchange is answered: waited for, not assumed within 300 ms.
      await waitFor(() => onMemory!.backendUp, 5_000, 'the memory worker to find its backend up');
      expect(await up()).toEqual([0]);

      await startServer();
      await waitFor(() => onRedis.backendUp, 10_000, 'the worker to see Redis back');
      expect(await up()).toEqual([1]);
      await stopServer();
      await waitFor(() => onRedis.backendState === 'down', 10_000, 'the worker to find Redis down again');
      expect(await up()).toEqual([0]);

      // Closed, a worker is out of the gauge: what is left is the other one's view, then nothing.
      await onRedis.close(0);
      expect(await up()).toEqual([1]);
      await onMemory.close(0);
      expect(await up()).toEqual([]);
    } finally {
      await startIfStopped();
      await onRedis.close(0);
      await onMemory?.close(0);
      await provider.close();
    }
  }, 60_000);

  it('queue_depth_stale is the minimum over the queue objects of a name on one registry, and the last one closed takes it and the depth series away', async () => {
    const provider = new RedisProvider({ connection: connect() });
    const registry = new Registry();
    const name = uniqueName('outage-stale');
    const labels = { queue: name };
    const options = { registry, depthCacheMs: 0, depthTimeoutMs: 500 };
    const onRedis = new Queue({ name, provider, ...options });
    // Another queue object of the name whose backend answers (here, another backend).
    const onMemory = new Queue({ name, provider: new MemoryProvider(), ...options });
    const stale = () => gauge(registry, 'noa_message_queue_queue_depth_stale', labels);
    const depth = () => gauge(registry, 'noa_message_queue_queue_depth_jobs', labels);
    try {
      await onRedis.add('a', 1);
      await registry.metrics();
      expect(await stale()).toEqual([0]);

      await stopServer();
      // One of them counts at each scrape, so the depth series holds a fresh count: not stale.
      for (let scrape = 0; scrape < 3; scrape += 1) {
        await registry.metrics();
        expect(await stale()).toEqual([0]);
      }
      // Closed, the one that counts is out: the other's count is unanswered, so the depth is stale.
      await onMemory.close();
      await registry.metrics();
      expect(await stale()).toEqual([1]);
      // The last one closed: nothing counts the depth any more, and no series says otherwise.
      await onRedis.close();
      expect(await stale()).toEqual([]);
      expect(await depth()).toEqual([]);
      await registry.metrics();
      expect(await depth()).toEqual([]);
    } finally {
      await startIfStopped();
      await onRedis.close();
      await onMemory.close();
      await provider.close();
    }
  }, 30_000);

  it('queue.add() with timeoutMs or a signal rejects with AddNotConfirmedError while Redis is down; the job may land later and a retry with its jobId adds nothing twice', async () => {
    const provider = new RedisProvider({ connection: connect() });
    const queue = new Queue({ name: uniqueName('outage-add'), provider });
    const bounded = new Queue({ name: queue.name, provider, addTimeoutMs: 300 });
    // What a caller sees within 3 s: the outcome of the add, or that it is still waiting.
    const within3s = <T>(work: Promise<T>) =>
      Promise.race([
        work.then(
          (value) => ({ value }),
          (error: unknown) => ({ error }),
        ),
        sleep(3_000).then(() => 'still waiting' as const),
      ]);
    try {
      await stopServer();
      const timedOut = await within3s(queue.add('a', 1, { jobId: 'job-1' }, { timeoutMs: 300 }));
      expect(timedOut).toHaveProperty('error');
      const error = (timedOut as { error: AddNotConfirmedError }).error;
      expect(error).toBeInstanceOf(AddNotConfirmedError);
      expect(error.code).toBe('NOA_MQ_ADD_NOT_CONFIRMED');
      expect(error.reason).toBe('timeout');
      expect(error.mayBeEnqueued).toBe(true);
      expect(error.jobIds).toEqual(['job-1']);
      expect(error.message).toMatch(/may still be enqueued/i);

      const controller = new AbortController();
      setTimeout(() => controller.abort(new Error('client went away')), 200);
      const aborted = await within3s(queue.add('b', 2, { jobId: 'job-2' }, { signal: controller.signal }));
      expect((aborted as { error: AddNotConfirmedError }).error).toMatchObject({
        code: 'NOA_MQ_ADD_NOT_CONFIRMED',
        reason: 'aborted',
        mayBeEnqueued: true,
        jobIds: ['job-2'],
      });

      // The queue's default bounds addBulk too; the ids of generated jobs are in the error.
      const bulk = await within3s(
        bounded.addBulk([
          { name: 'c', data: 3 },
          { name: 'd', data: 4 },
        ]),
      );
      const bulkError = (bulk as { error: AddNotConfirmedError }).error;
      expect(bulkError).toBeInstanceOf(AddNotConfirmedError);
      expect(bulkError.jobIds).toHaveLength(2);

      // Aborted before anything was sent: nothing is enqueued, and the error says so.
      const early = await within3s(
        queue.add('e', 5, { jobId: 'job-early' }, { signal: AbortSignal.abort(new Error('gone')) }),
      );
      expect((early as { error: AddNotConfirmedError }).error).toMatchObject({
        code: 'NOA_MQ_ADD_NOT_CONFIRMED',
        mayBeEnqueued: false,
      });

      await startServer();
      // Nothing was retried by the queue, but the abandoned commands were still sent: the jobs
      // land when Redis is back, so a client's retry must reuse the jobId.
      await waitFor(
        async () => (await queue.getJob('job-1')) !== undefined,
        10_000,
        'the abandoned add to land',
      );
      expect(await queue.add('a', 1, { jobId: 'job-1' }, { timeoutMs: 5_000 })).toEqual({
        id: 'job-1',
        added: false,
      });
      expect((await queue.counts()).waiting).toBe(4);
      expect(await queue.getJob('job-early')).toBeUndefined();
    } finally {
      await startIfStopped();
      await provider.close();
    }
  }, 30_000);

  it('scrapes during an outage answer at once from the last counted depth, marked stale, and count again after it', async () => {
    const provider = new RedisProvider({ connection: connect() });
    const registry = new Registry();
    const logger = recordingLogger();
    // depthCacheMs 0: every scrape would count.
    const queue = new Queue({
      name: uniqueName('outage-depth'),
      provider,
      registry,
      logger,
      depthCacheMs: 0,
      depthTimeoutMs: 2_000,
    });
    const labels = { queue: queue.name };
    const scrape = async () => {
      const started = performance.now();
      await registry.metrics();
      return performance.now() - started;
    };
    try {
      await queue.addBulk([
        { name: 'a', data: 1 },
        { name: 'b', data: 2 },
        { name: 'c', data: 3 },
      ]);
      await scrape();
      expect(
        await gauge(registry, 'noa_message_queue_queue_depth_jobs', { ...labels, state: 'waiting' }),
      ).toEqual([3]);
      expect(await gauge(registry, 'noa_message_queue_queue_depth_stale', labels)).toEqual([0]);

      await stopServer();
      // The first scrape cannot know yet: it waits up to depthTimeoutMs.
      expect(await scrape()).toBeLessThan(5_000);
      // The next ones do not wait it out again, nor pile counts onto the waiting connection.
      const took = [await scrape(), await scrape(), await scrape()];
      expect(Math.max(...took)).toBeLessThan(1_000);
      expect(
        await gauge(registry, 'noa_message_queue_queue_depth_jobs', { ...labels, state: 'waiting' }),
      ).toEqual([3]);
      expect(await gauge(registry, 'noa_message_queue_queue_depth_stale', labels)).toEqual([1]);
      expect(logger.lines('warn').filter((line) => line.includes('queue_depth_jobs'))).toHaveLength(1);

      await startServer();
      // The restarted server kept nothing (no persistence): a fresh count says 0, not stale.
      await waitFor(
        async () => {
          await scrape();
          return (await gauge(registry, 'noa_message_queue_queue_depth_stale', labels))[0] === 0;
        },
        10_000,
        'a fresh count after the restart',
      );
      expect(
        await gauge(registry, 'noa_message_queue_queue_depth_jobs', { ...labels, state: 'waiting' }),
      ).toEqual([0]);
    } finally {
      await startIfStopped();
      await queue.close();
      await provider.close();
    }
  }, 30_000);
});

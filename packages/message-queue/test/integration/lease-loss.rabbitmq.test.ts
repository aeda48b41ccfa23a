import { isReachable, recordingLogger, serviceUrl, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { LeaseLostError, Queue, Worker } from '../../src/index.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { RedisJobStateStore } from '../../src/redis.js';
import { waitFor } from '../helpers.js';
import { cutWhileRunning, gate, heldJobWorker, proxiedUrl } from './proxied-rabbit.js';

const url = serviceUrl('rabbitmq');
const reachable = await isReachable('rabbitmq');
if (!reachable) console.log(`skipped: no RabbitMQ at ${url}`);
const redisUp = await isReachable('redis');
if (!redisUp) console.log(`skipped (state store variant): no Redis at ${serviceUrl('redis')}`);

const variants = [
  { label: 'AMQP only', state: false, skip: false },
  { label: 'with a Redis job state store', state: true, skip: !redisUp },
];

async function leasesLost(registry: Registry, queue: string): Promise<number> {
  const text = await registry.metrics();
  const match = new RegExp(`noa_message_queue_leases_lost_total\\{queue="${queue}"\\} (\\d+)`).exec(text);
  return Number(match?.[1] ?? 0);
}

// Worker A reaches the broker through a proxy the test cuts: its connection (and the consumer
// channel on it) closes while its handler runs, the broker redelivers the job to worker B
// (another process, as far as the broker and the store can tell), and both runs go on at once.
describe.skipIf(!reachable)('RabbitMQ: the run whose channel closed loses its lease', () => {
  for (const variant of variants) {
    it.skipIf(variant.skip)(
      `the first run's late outcome is refused and counted, the redelivered run's stands (${variant.label})`,
      async () => {
        const { proxy, url: proxied } = await proxiedUrl(url);
        const name = uniqueName('lease-loss');
        const prefix = uniqueName('lease-loss-state');
        const connections: Redis[] = [];
        const state = () => {
          if (!variant.state) return {};
          const connection = new Redis(serviceUrl('redis'), { maxRetriesPerRequest: null });
          connections.push(connection);
          return { state: new RedisJobStateStore({ connection, prefix }) };
        };
        const providerA = new RabbitMqProvider({
          url: proxied,
          reconnectDelayMs: 50,
          maxReconnectDelayMs: 200,
          ...state(),
        });
        const providerB = new RabbitMqProvider({ url, ...state() });
        const queueA = new Queue({ name, provider: providerA });
        const queueB = new Queue({ name, provider: providerB });
        const registryA = new Registry();
        const gateA = gate();
        const gateB = gate();
        const runs: string[] = [];
        const completedA: unknown[] = [];
        const completedB: unknown[] = [];
        const abortedA: unknown[] = [];
        const workers: Worker[] = [];
        try {
          const workerA = new Worker({
            queue: queueA,
            registry: registryA,
            // Heart-beats every 200 ms: how soon it learns that its lease is gone.
            leaseMs: 600,
            handler: async (job) => {
              runs.push('A');
              job.signal.addEventListener('abort', () => abortedA.push(job.signal.reason));
              // A handler that ignores its signal and finishes anyway: its outcome must be refused.
              await gateA.wait;
              return 'A';
            },
          });
          workers.push(workerA);
          workerA.on('completed', (_id, result) => completedA.push(result));
          const { id } = await queueA.add('slow', null, variant.state ? { jobId: 'the-job' } : undefined);
          await waitFor(() => runs.includes('A'), 10_000, 'worker A to run the job');
          const workerB = new Worker({
            queue: queueB,
            leaseMs: 60_000,
            handler: async () => {
              runs.push('B');
              await gateB.wait;
              return 'B';
            },
          });
          workers.push(workerB);
          workerB.on('completed', (_id, result) => completedB.push(result));
          // A's connection drops and it cannot reconnect: the broker redelivers the job to B.
          await proxy.down();
          await waitFor(() => runs.includes('B'), 10_000, 'worker B to run the redelivered job');
          // A's signal aborts: its lease is gone (its channel closed and B holds the job).
          await waitFor(() => abortedA.length === 1, 10_000, "A's signal to abort");
          expect(abortedA[0]).toBeInstanceOf(LeaseLostError);
          expect(abortedA[0]).toMatchObject({ code: 'NOA_MQ_LEASE_LOST', reason: 'revoked' });
          await proxy.up();
          // A finishes first, while B still runs the job.
          gateA.open();
          await waitFor(async () => (await leasesLost(registryA, name)) >= 1, 10_000, "A's refused outcome");
          gateB.open();
          await waitFor(() => completedB.length === 1, 10_000, 'B to complete');
          await workerA.close();
          await workerB.close();
          // Before: A's late outcome was reported completed (and with the store, stored as the
          // job's result, B's then refused).
          expect(completedA).toEqual([]);
          expect(completedB).toEqual(['B']);
          expect(await leasesLost(registryA, name)).toBe(1);
          if (variant.state) {
            const job = await queueB.getJob(id);
            expect({ state: job?.state, result: job?.result }).toEqual({ state: 'completed', result: 'B' });
          }
          expect(runs).toEqual(['A', 'B']);
        } finally {
          gateA.open();
          gateB.open();
          // Workers before their providers (a worker of a closed provider is not the case tested).
          await Promise.all(workers.map((worker) => worker.close()));
          await providerB.deleteQueue(name).catch(() => undefined);
          await providerA.close();
          await providerB.close();
          await proxy.close();
          await Promise.all(connections.map((connection) => connection.quit()));
        }
      },
      60_000,
    );
  }

  // The same gap as a consumer_timeout's (consumer-timeout.rabbitmq.test.ts), by a cut connection:
  // the handler returns while the connection is down, so its outcome cannot be acknowledged, and
  // the broker gives the job back to this same process (its only consumer) once it reconnects.
  for (const variant of variants) {
    it.skipIf(variant.skip)(
      `a run finishing while its connection is down is not run again when the job comes back to it (${variant.label})`,
      async () => {
        const { proxy, url: proxied } = await proxiedUrl(url);
        const name = uniqueName('lease-loss-gap');
        const connection = variant.state
          ? new Redis(serviceUrl('redis'), { maxRetriesPerRequest: null })
          : undefined;
        const logger = recordingLogger();
        const provider = new RabbitMqProvider({
          url: proxied,
          reconnectDelayMs: 50,
          maxReconnectDelayMs: 200,
          logger,
          ...(connection
            ? { state: new RedisJobStateStore({ connection, prefix: uniqueName('lease-loss-gap-state') }) }
            : {}),
        });
        const queue = new Queue({ name, provider });
        const registry = new Registry();
        const finish = gate();
        const runs: string[] = [];
        const completed: string[] = [];
        let worker: Worker | undefined;
        try {
          worker = new Worker({
            queue,
            registry,
            ...heldJobWorker,
            handler: async (job) => {
              runs.push(job.name);
              if (job.name === 'gap') await finish.wait;
              return job.name;
            },
          });
          worker.on('completed', (id) => completed.push(id));
          const { id } = await queue.add('gap', null);
          await cutWhileRunning(proxy, logger, runs);
          finish.open();
          await proxy.up();
          await waitFor(() => completed.includes(id), 20_000, 'the job to complete');
          const after = await queue.add('after', null);
          await waitFor(() => completed.includes(after.id), 10_000, 'a job added after it');
          await waitFor(async () => (await provider.counts(name)).active === 0, 10_000, 'nothing held');
          await worker.close();
          expect(runs).toEqual(['gap', 'after']);
          expect(completed).toEqual([id, after.id]);
          expect(await leasesLost(registry, name)).toBe(0);
          const settled = /noa_message_queue_redeliveries_settled_total\{queue="[^"]+"\} (\d+)/.exec(
            await registry.metrics(),
          );
          expect(Number(settled?.[1] ?? 0)).toBe(variant.state ? 0 : 1);
          if (variant.state) expect((await queue.getJob(id))?.state).toBe('completed');
        } finally {
          finish.open();
          await worker?.close();
          await provider.deleteQueue(name).catch(() => undefined);
          await provider.close();
          await proxy.close();
          await connection?.quit();
        }
      },
      60_000,
    );
  }
});

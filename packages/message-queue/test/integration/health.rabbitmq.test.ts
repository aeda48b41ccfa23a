import { existsSync } from 'node:fs';
import { type PrivateRabbit, startPrivateRabbit, uniqueName } from '@noa/testkit';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue, Worker } from '../../src/index.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { waitFor } from '../helpers.js';

const binDir = process.env.RABBITMQ_BIN_DIR ?? '/usr/lib/rabbitmq/bin';
const unavailable = existsSync(`${binDir}/rabbitmq-server`)
  ? undefined
  : `no RabbitMQ server binaries in ${binDir}`;
if (unavailable) console.log(`skipped: ${unavailable}`);

async function backendUp(registry: Registry, queue: string): Promise<number[]> {
  const metric = await registry.getSingleMetric('noa_message_queue_backend_up')?.get();
  return (metric?.values ?? []).filter((value) => value.labels.queue === queue).map((value) => value.value);
}

describe.skipIf(unavailable !== undefined)(
  'worker health while the RabbitMQ broker is down (AMQP only)',
  () => {
    let node: PrivateRabbit;
    beforeAll(async () => {
      node = await startPrivateRabbit();
    });
    afterAll(async () => {
      await node?.destroy();
    });

    it('goes down with the cause while the node is stopped, and up again once it is back and runs a job added then', async () => {
      const provider = new RabbitMqProvider({
        url: node.url,
        reconnectDelayMs: 50,
        maxReconnectDelayMs: 200,
      });
      const registry = new Registry();
      const queue = new Queue<number>({ name: uniqueName('health-rabbit'), provider });
      const ran: number[] = [];
      const errors: unknown[] = [];
      const worker = new Worker({
        queue,
        backendTimeoutMs: 500,
        registry,
        handler: async (job) => {
          ran.push(job.data);
        },
      });
      worker.on('error', (error) => errors.push(error));
      try {
        await queue.add('before', 1);
        await waitFor(() => ran.includes(1), 10_000, 'a job before the outage');
        await waitFor(() => worker.backendState === 'up', 5_000, 'the worker to be up');
        expect(await backendUp(registry, queue.name)).toEqual([1]);

        await node.stop();
        await waitFor(() => worker.backendState === 'down', 15_000, 'the worker to see the broker down');
        const report = worker.health();
        expect(report.status).toBe('down');
        expect(report.cause).toBeInstanceOf(Error);
        expect(await backendUp(registry, queue.name)).toEqual([0]);
        expect(errors.length).toBe(1);

        await node.start();
        await queue.add('after', 2);
        await waitFor(() => ran.includes(2), 30_000, 'a job added after the restart');
        await waitFor(() => worker.backendState === 'up', 10_000, 'the worker to be up again');
        expect(worker.health().status).toBe('up');
        expect(await backendUp(registry, queue.name)).toEqual([1]);
        expect(errors.length).toBe(1);
      } finally {
        await worker.close();
        // A broker left stopped by a failure would hold deleteQueue for ever; the node goes anyway.
        if (worker.backendState === 'up') await provider.deleteQueue(queue.name);
        await provider.close();
      }
    }, 120_000);
  },
);

import { existsSync } from 'node:fs';
import { startPrivateRabbit, uniqueName } from '@noa/testkit';
import { describe, expect, it } from 'vitest';
import { Queue, RabbitMqProvider, Worker } from '../../src/index.js';
import { sleep, startProducer, waitFor } from '../helpers.js';

// Where testkit's startPrivateRabbit looks for the server scripts.
const binDir = process.env.RABBITMQ_BIN_DIR ?? '/usr/lib/rabbitmq/bin';
const unavailable = existsSync(`${binDir}/rabbitmq-server`)
  ? undefined
  : `no RabbitMQ server binaries in ${binDir}`;
if (unavailable) console.log(`skipped: ${unavailable}`);

describe.skipIf(unavailable !== undefined)(
  'broker failure: a private RabbitMQ node stopped and restarted mid-run',
  () => {
    it('producers and workers reconnect, re-declare and lose no acknowledged job', async () => {
      const node = await startPrivateRabbit();
      const options = { url: node.url, reconnectDelayMs: 100, maxReconnectDelayMs: 500 };
      const producerProvider = new RabbitMqProvider(options);
      const workerProvider = new RabbitMqProvider(options);
      try {
        const name = uniqueName('restart');
        const queue = new Queue<number>({ name, provider: producerProvider });
        const completed = new Set<number>();
        let completions = 0;
        const worker = new Worker({
          queue: new Queue<number>({ name, provider: workerProvider }),
          concurrency: 10,
          pollIntervalMs: 100,
          handler: async (job) => {
            await sleep(2);
            completed.add(job.data);
            completions += 1;
          },
        });
        const producer = startProducer(async (n) => {
          await queue.add('work', n);
          return n;
        });
        const { acknowledged } = producer;
        await waitFor(() => completed.size >= 200, 20_000, '200 completions before the restart');
        await node.stop();
        await sleep(300);
        await node.start();
        const atRestart = acknowledged.length;
        await waitFor(() => acknowledged.length >= atRestart + 200, 30_000, 'the producer to recover');
        await producer.stop();
        await waitFor(
          () => acknowledged.every((n) => completed.has(n)),
          30_000,
          'every acknowledged job to complete',
        );
        await worker.close();
        console.log(
          `rabbitmq node restart: ${acknowledged.length} acknowledged adds, ${completed.size} distinct completed, ` +
            `${completions - completed.size} duplicates`,
        );
        expect(acknowledged.filter((n) => !completed.has(n))).toEqual([]);
      } finally {
        await producerProvider.close();
        await workerProvider.close();
        await node.destroy();
      }
    }, 90_000);
  },
);

import { type PrivateRabbit, serviceUrl, startPrivateRabbit, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue, Worker } from '../../src/index.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { RedisJobStateStore } from '../../src/redis.js';
import { sleep, startProducer, waitFor } from '../helpers.js';
import { privateRabbitUnavailable, stateVariants } from './private-rabbit-setup.js';

const unavailable = privateRabbitUnavailable();

// The same run without and with a job state store (Redis stays up; the broker restarts).
const variants = await stateVariants();

/**
 * One stop and start of the node for every variant that runs (a node boot and a stop are most
 * of this file's time): each variant arrives once it has its completions before the restart,
 * and is let go once the node answers again. A variant that failed before arriving leaves, so
 * the others are not kept waiting for it.
 */
function sharedRestart(parties: number, restart: () => Promise<void>) {
  let arrived = 0;
  let release!: () => void;
  const everyone = new Promise<void>((resolve) => {
    release = resolve;
  });
  let restarted: Promise<void> | undefined;
  return {
    arrive: async () => {
      arrived += 1;
      if (arrived >= parties) release();
      await everyone;
      restarted ??= restart();
      await restarted;
    },
    leave: () => {
      parties -= 1;
      if (arrived >= parties) release();
    },
  };
}

describe
  .skipIf(unavailable !== undefined)
  .concurrent('broker failure: a private RabbitMQ node stopped and restarted mid-run', () => {
    let node: PrivateRabbit;
    beforeAll(async () => {
      node = await startPrivateRabbit();
    });
    afterAll(async () => {
      await node?.destroy();
    });
    const restart = sharedRestart(variants.filter((variant) => !variant.skip).length, async () => {
      await node.stop();
      await sleep(300);
      await node.start();
    });
    for (const variant of variants) {
      it.skipIf(variant.skip)(
        `producers and workers reconnect, re-declare and lose no acknowledged job (${variant.label})`,
        async () => {
          let arrived = false;
          const connections: Redis[] = [];
          const prefix = uniqueName('restart-state');
          const state = () => {
            if (!variant.state) return {};
            const connection = new Redis(serviceUrl('redis'), { maxRetriesPerRequest: null });
            connections.push(connection);
            return { state: new RedisJobStateStore({ connection, prefix }) };
          };
          const options = { url: node.url, reconnectDelayMs: 100, maxReconnectDelayMs: 500 };
          const producerProvider = new RabbitMqProvider({ ...options, ...state() });
          const workerProvider = new RabbitMqProvider({ ...options, ...state() });
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
            // With a store, a rejected add is retried with the same id: its claim was released.
            const producer = startProducer(async (n) => {
              await queue.add('work', n, variant.state ? { jobId: `job-${n}` } : undefined);
              return n;
            });
            const { acknowledged } = producer;
            await waitFor(() => completed.size >= 200, 20_000, '200 completions before the restart');
            arrived = true;
            await restart.arrive();
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
              `rabbitmq node restart (${variant.label}): ${acknowledged.length} acknowledged adds, ${completed.size} distinct completed, ` +
                `${completions - completed.size} duplicates`,
            );
            expect(acknowledged.filter((n) => !completed.has(n))).toEqual([]);
          } finally {
            if (!arrived) restart.leave();
            await producerProvider.close();
            await workerProvider.close();
            await Promise.all(connections.map((connection) => connection.quit()));
          }
        },
        90_000,
      );
    }
  });

import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { Queue, Worker } from '../../src/index.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { RedisJobStateStore } from '../../src/redis.js';
import { sleep, startProducer, waitFor } from '../helpers.js';

const url = serviceUrl('rabbitmq');
const reachable = await isReachable('rabbitmq');
if (!reachable) console.log(`skipped: no RabbitMQ at ${url}`);
const broker = new URL(url);
const managementUrl = `http://${broker.hostname}:15672/api`;
const auth = `Basic ${Buffer.from(`${decodeURIComponent(broker.username || 'guest')}:${decodeURIComponent(broker.password || 'guest')}`).toString('base64')}`;
const managementUp =
  reachable &&
  (await fetch(`${managementUrl}/overview`, { headers: { authorization: auth } }).then(
    (r) => r.ok,
    () => false,
  ));
if (reachable && !managementUp) console.log(`skipped: no RabbitMQ management API at ${managementUrl}`);

/** Closes, from the broker's side, every connection whose client-given name is in `names`. */
async function closeConnections(names: string[]): Promise<number> {
  const response = await fetch(`${managementUrl}/connections`, { headers: { authorization: auth } });
  const connections = (await response.json()) as {
    name: string;
    client_properties?: { connection_name?: string };
  }[];
  const targets = connections.filter((connection) =>
    names.includes(connection.client_properties?.connection_name ?? ''),
  );
  for (const connection of targets) {
    await fetch(`${managementUrl}/connections/${encodeURIComponent(connection.name)}`, {
      method: 'DELETE',
      headers: { authorization: auth, 'x-reason': 'noa message-queue reconnect test' },
    });
  }
  return targets.length;
}

// A second broker failure besides restart.rabbitmq.test.ts (private node stopped and started):
// the shared broker closes our connections from its side (management API), as on a failover.
const redisUp = await isReachable('redis');
if (!redisUp) console.log(`skipped (state store variant): no Redis at ${serviceUrl('redis')}`);
// Without and with a job state store (Redis stays up): with the store, a job whose outcome was
// stored before the connection dropped is not run again when the broker redelivers it.
const variants = [
  { label: 'AMQP only', state: false, skip: false },
  { label: 'with a Redis job state store', state: true, skip: !redisUp },
];

// The variants side by side (their own queues and connection names): each waits for the
// management API to list its connections.
describe
  .skipIf(!managementUp)
  .concurrent('broker failure: RabbitMQ connections closed by the server mid-run', () => {
    for (const variant of variants) {
      it.skipIf(variant.skip)(
        `producers and workers reconnect, re-declare and lose no acknowledged job (${variant.label})`,
        async () => {
          const name = uniqueName('reconnect');
          const producerName = `${name}-producer`;
          const workerName = `${name}-worker`;
          const connections: Redis[] = [];
          const prefix = uniqueName('reconnect-state');
          const state = () => {
            if (!variant.state) return {};
            const connection = new Redis(serviceUrl('redis'), { maxRetriesPerRequest: null });
            connections.push(connection);
            return { state: new RedisJobStateStore({ connection, prefix }) };
          };
          const producerProvider = new RabbitMqProvider({ url, connectionName: producerName, ...state() });
          const workerProvider = new RabbitMqProvider({ url, connectionName: workerName, ...state() });
          const queue = new Queue<number>({ name, provider: producerProvider });
          const workerQueue = new Queue<number>({ name, provider: workerProvider });
          try {
            const completed = new Set<number>();
            let completions = 0;
            const worker = new Worker({
              queue: workerQueue,
              concurrency: 10,
              pollIntervalMs: 100,
              handler: async (job) => {
                await sleep(2);
                completed.add(job.data);
                completions += 1;
              },
            });
            const producer = startProducer(async (n) => {
              await queue.add('work', n, variant.state ? { jobId: `job-${n}` } : undefined);
              return n;
            });
            const { acknowledged } = producer;
            await waitFor(() => completed.size >= 200, 20_000, '200 completions before the failure');
            await waitFor(
              // Two per provider: one publishes, one consumes and declares.
              async () => (await closeConnections([producerName, workerName])) === 4,
              15_000,
              'our connections to be listed',
            );
            const atFailure = acknowledged.length;
            await waitFor(() => acknowledged.length >= atFailure + 200, 20_000, 'the producer to recover');
            await producer.stop();
            await waitFor(
              () => acknowledged.every((n) => completed.has(n)),
              30_000,
              'every acknowledged job to complete',
            );
            await worker.close();
            console.log(
              `rabbitmq reconnect (${variant.label}): ${acknowledged.length} acknowledged adds, ${completed.size} distinct completed, ` +
                `${completions - completed.size} duplicates (redelivered after the connection loss)`,
            );
            expect(acknowledged.filter((n) => !completed.has(n))).toEqual([]);
          } finally {
            await producerProvider.deleteQueue(name).catch(() => undefined);
            await producerProvider.close();
            await workerProvider.close();
            await Promise.all(connections.map((connection) => connection.quit()));
          }
        },
      );
    }
  });

import { isReachable, recordingLogger, serviceUrl, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { Queue, Worker } from '../../src/index.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { RedisJobStateStore } from '../../src/redis.js';
import { sleep, waitFor } from '../helpers.js';

// Stopping a consumer (a worker closing, a pause) must close its channel, not only cancel it:
// each close-then-restart or pause/resume cycle used to leave one more channel open.
const url = serviceUrl('rabbitmq');
const reachable = await isReachable('rabbitmq');
if (!reachable) console.log(`skipped: no RabbitMQ at ${url}`);
const redisUp = await isReachable('redis');

const broker = new URL(url);
const managementUrl = `http://${broker.hostname}:15672/api`;
const auth = `Basic ${Buffer.from(`${decodeURIComponent(broker.username || 'guest')}:${decodeURIComponent(broker.password || 'guest')}`).toString('base64')}`;
const managementUp =
  reachable &&
  (await fetch(`${managementUrl}/overview`, { headers: { authorization: auth } }).then(
    (response) => response.ok,
    () => false,
  ));
if (reachable && !managementUp) console.log(`skipped: no RabbitMQ management API at ${managementUrl}`);

/** The channels the broker lists for the connection of this client-given name. */
async function brokerChannels(connectionName: string): Promise<number> {
  const response = await fetch(`${managementUrl}/channels`, { headers: { authorization: auth } });
  const channels = (await response.json()) as { connection_details?: { name?: string } }[];
  const connections = (await (
    await fetch(`${managementUrl}/connections`, { headers: { authorization: auth } })
  ).json()) as { name: string; client_properties?: { connection_name?: string } }[];
  const names = new Set(
    connections
      .filter((connection) => connection.client_properties?.connection_name === connectionName)
      .map((connection) => connection.name),
  );
  return channels.filter((channel) => names.has(channel.connection_details?.name ?? '')).length;
}

const variants = [
  { label: 'AMQP only', state: false, skip: false },
  { label: 'with a Redis job state store', state: true, skip: !redisUp },
];

// The variants side by side: each waits out the management API's stats interval.
describe.skipIf(!managementUp).concurrent('RabbitMQ: a stopped consumer closes its channel', () => {
  for (const variant of variants) {
    it.skipIf(variant.skip)(
      `6 worker close/restart and 6 pause/resume cycles leave the channel count flat, and no reconnect (${variant.label})`,
      async () => {
        const connection = variant.state
          ? new Redis(serviceUrl('redis'), { maxRetriesPerRequest: null })
          : undefined;
        const connectionName = uniqueName('consumer-channels');
        const logger = recordingLogger();
        const provider = new RabbitMqProvider({
          url,
          connectionName,
          logger,
          ...(connection
            ? { state: new RedisJobStateStore({ connection, prefix: uniqueName('consumer-channels') }) }
            : {}),
        });
        const name = uniqueName('consumer-channels');
        const queue = new Queue<{ n: number }>({ name, provider });
        const ran: number[] = [];
        const startWorker = () =>
          new Worker<{ n: number }>({
            queue,
            concurrency: 2,
            handler: (job) => {
              ran.push(job.data.n);
            },
          });
        let worker = startWorker();
        let n = 0;
        /** Adds a job and waits until the current worker ran it (its consumer is up). */
        const roundTrip = async () => {
          const expected = n;
          await queue.add('job', { n: expected });
          n += 1;
          await waitFor(() => ran.includes(expected), 10_000, `job ${expected} to run`);
        };
        try {
          await roundTrip();
          // Publisher, declarer, the consumer and the broker probe's channel (opened by the first
          // probe: an idle worker probes once the broker was silent for a second, README "A
          // frozen RabbitMQ broker"); the stats refresh every few seconds. Read before the probe
          // had its channel, the baseline was one short of the count after the cycles.
          const baseline = await waitFor(
            async () => {
              const count = await brokerChannels(connectionName);
              return count >= 4 ? count : undefined;
            },
            20_000,
            'the consumer channel to be listed',
          );
          for (let cycle = 0; cycle < 6; cycle += 1) {
            await worker.close();
            worker = startWorker();
            await roundTrip();
            await queue.pause();
            await queue.resume();
            await roundTrip();
          }
          // The management API lists a channel from its first stats emission (every 5 s by
          // default, `collect_statistics_interval`) on: a listing read at once could lack the
          // channels the cycles left open. One interval and a margin later they are listed. A
          // broker slower than that cannot fail the check below, only make it miss such channels.
          await sleep(6_500);
          // Before: baseline + 12 (each stop cancelled its consumer and left the channel open).
          // Exactly the baseline, not at most: a broker that has not yet emitted the last
          // consumer's channel lists one fewer, which ended the wait and failed the assertion.
          let count = 0;
          await waitFor(
            async () => {
              count = await brokerChannels(connectionName);
              return count === baseline;
            },
            20_000,
            'the channel count to come back to the baseline',
          ).catch(() => undefined);
          expect(count).toBe(baseline);
          // A closed consumer channel was not taken for a lost connection.
          expect(
            logger
              .messages('warn', 'error')
              .filter((warning) => /connection lost|closed a consumer channel/.test(warning)),
          ).toEqual([]);
          expect(ran.sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, index) => index));
        } finally {
          await worker.close();
          await provider.deleteQueue(name);
          await provider.close();
          await connection?.quit();
        }
      },
      90_000,
    );
  }
});

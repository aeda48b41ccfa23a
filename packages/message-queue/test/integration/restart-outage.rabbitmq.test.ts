import { cleanUpWithin, uniqueName, within } from '@noa/testkit';
import amqp from 'amqplib';
import { describe, expect, it, onTestFinished } from 'vitest';
import { Queue, Worker } from '../../src/index.js';
import { sleep, waitFor } from '../helpers.js';
import {
  nodeStartMs,
  privateRabbitUnavailable,
  providerOn,
  stateVariants,
  usePrivateRabbitNode,
} from './private-rabbit-setup.js';

// The broker cancels a consumer when its queue is deleted (or its node goes down in a cluster):
// the provider stops that consumer and starts it again, declaring the queue anew (see
// `RabbitConsumers`). Here the node stops while that restart is under way, at a few points of
// it. A user's close() must return while the node is away (CI once saw the RabbitMQ health
// cases hang until their timeout, with a stop and start of a private node in each), and once
// the node is back the restart must finish: a job added then runs.
const unavailable = privateRabbitUnavailable();
const variants = await stateVariants();

/** When the node stops, counted from the delete that made the broker cancel the consumer. */
const stopDelaysMs = [0, 30, 200];
const nodeStopMs = 25_000;
/** worker.close(): its closeTimeoutMs (10 s, for handlers; none runs) and backendCloseTimeoutMs (5 s). */
const workerCloseMs = 20_000;
/** provider.close(): its closeTimeoutMs (5 s). */
const providerCloseMs = 10_000;

describe.skipIf(unavailable !== undefined)(
  'RabbitMQ: the node stops while a consumer the broker cancelled is started again',
  () => {
    const privateNode = usePrivateRabbitNode();

    /** A worker on the private node that has run one job, its queue then deleted under it. */
    async function cancelledConsumer(state: boolean) {
      const node = privateNode();
      const { redis, provider } = providerOn(node, state, 'restart-outage-state');
      const queue = new Queue<number>({ name: uniqueName('restart-outage'), provider });
      const ran: number[] = [];
      const worker = new Worker({
        queue,
        backendTimeoutMs: 500,
        handler: async (job) => {
          ran.push(job.data);
        },
      });
      worker.on('error', () => {});
      onTestFinished(() =>
        cleanUpWithin([
          ['worker.close()', workerCloseMs, () => worker.close()],
          ['provider.close()', providerCloseMs, () => provider.close()],
          ['redis.disconnect()', 1_000, () => redis?.disconnect()],
        ]),
      );
      await within('add a job', 10_000, queue.add('before', 1));
      await waitFor(() => ran.includes(1), 10_000, 'the first job to run');
      // Deleted from another connection: the broker cancels the worker's consumer.
      const admin = await within('an admin connection', 10_000, amqp.connect(node.url));
      try {
        const channel = await admin.createChannel();
        await channel.deleteQueue(queue.name);
      } finally {
        await admin.close().catch(() => {});
      }
      return { queue, worker, provider, ran };
    }

    for (const variant of variants)
      it.skipIf(variant.skip)(
        `worker.close() and provider.close() return while the node is down (${variant.label})`,
        async () => {
          const node = privateNode();
          for (const delayMs of stopDelaysMs) {
            const { worker, provider } = await cancelledConsumer(variant.state);
            await sleep(delayMs);
            await within(`stop the node ${delayMs} ms after the delete`, nodeStopMs, node.stop());
            await within(
              `worker.close() with the node down (stopped at ${delayMs} ms)`,
              workerCloseMs,
              worker.close(),
            );
            await within(
              `provider.close() with the node down (stopped at ${delayMs} ms)`,
              providerCloseMs,
              provider.close(),
            );
            await within('start the node again', nodeStartMs, node.start());
          }
        },
        // Three rounds of a node stop and start (about 6 s each idle) and bounded closes.
        240_000,
      );

    for (const variant of variants)
      it.skipIf(variant.skip)(
        `once the node is back, the consumer is started again and a job added then runs (${variant.label})`,
        async () => {
          const node = privateNode();
          for (const delayMs of stopDelaysMs) {
            const { queue, ran } = await cancelledConsumer(variant.state);
            await sleep(delayMs);
            await within(`stop the node ${delayMs} ms after the delete`, nodeStopMs, node.stop());
            await within('start the node again', nodeStartMs, node.start());
            await within('add a job after the restart', 10_000, queue.add('after', 2));
            await waitFor(
              () => ran.includes(2),
              30_000,
              `the job added after the restart (stopped at ${delayMs} ms)`,
            );
            expect(ran).toEqual([1, 2]);
          }
        },
        240_000,
      );
  },
);

import type amqp from 'amqplib';
import { Worker as BullWorker, type ConnectionOptions } from 'bullmq';

/**
 * The raw amqplib consumer the RabbitMQ rows compare against: a channel with prefetch 100 that
 * parses each message and acknowledges it at once, or (`perTick`) once per tick with one
 * `basic.ack(multiple)`. Resolves with the channel (the caller closes it) after `count` messages.
 */
export async function rawConsume(
  connection: amqp.ChannelModel,
  queue: string,
  count: number,
  perTick: boolean,
): Promise<amqp.Channel> {
  const channel = await connection.createChannel();
  await channel.prefetch(100);
  await new Promise<void>((resolve) => {
    let done = 0;
    let last: amqp.ConsumeMessage | undefined;
    const flush = () => {
      channel.ack(last!, true);
      last = undefined;
    };
    void channel.consume(queue, (message) => {
      if (!message) return;
      JSON.parse(message.content.toString());
      if (perTick) {
        if (!last) process.nextTick(flush);
        last = message;
      } else channel.ack(message);
      done += 1;
      if (done === count) resolve();
    });
  });
  return channel;
}

/**
 * The BullMQ side of the processing rows: a worker with a no-op handler on queue `name`, resolved
 * with the worker (the caller closes it) once `count` jobs have completed.
 */
export async function bullDrain(
  name: string,
  connection: ConnectionOptions,
  concurrency: number,
  count: number,
): Promise<BullWorker> {
  let worker: BullWorker | undefined;
  await new Promise<void>((resolve) => {
    let done = 0;
    worker = new BullWorker(name, async () => undefined, { connection, concurrency });
    worker.on('completed', () => {
      done += 1;
      if (done === count) resolve();
    });
  });
  return worker!;
}

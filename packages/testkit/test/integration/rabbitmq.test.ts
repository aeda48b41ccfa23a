import amqp from 'amqplib';
import { describe, expect, it } from 'vitest';
import { rabbitManagementUrl, uniqueName, withRabbitVhost } from '../../src/index.js';
import { requireService, smokeLine } from './smoke.js';

/** Publishes one message with a publisher confirm on a temporary queue and consumes it back. */
async function roundTrip(url: string, queuePrefix: string): Promise<{ body: string; version: string }> {
  const connection = await amqp.connect(url);
  try {
    const version = String(connection.connection.serverProperties.version ?? '');
    const channel = await connection.createConfirmChannel();
    const { queue } = await channel.assertQueue(`${queuePrefix}.smoke`, {
      exclusive: true,
      autoDelete: true,
    });
    const body = `hello ${queuePrefix}`;
    await new Promise<void>((resolve, reject) =>
      channel.sendToQueue(queue, Buffer.from(body), {}, (error) => (error ? reject(error) : resolve())),
    );
    const received = await new Promise<string>((resolve) => {
      void channel.consume(queue, (message) => {
        if (!message) return;
        channel.ack(message);
        resolve(message.content.toString());
      });
    });
    await channel.close();
    return { body: received, version };
  } finally {
    await connection.close();
  }
}

describe('RabbitMQ smoke', () => {
  it('publishes with a confirm and consumes on a temporary queue', async () => {
    const url = await requireService('rabbitmq', 'RabbitMQ');
    const prefix = uniqueName('mq');
    const { body, version } = await roundTrip(url, prefix);
    expect(body).toBe(`hello ${prefix}`);
    expect(version).toMatch(/^3\./);
    smokeLine('rabbitmq', version, url);
  });

  it('gives a test its own vhost through the management API, and deletes it', async () => {
    const url = await requireService('rabbitmq', 'RabbitMQ');
    const vhost = await withRabbitVhost({ amqpUrl: url });
    try {
      const { body } = await roundTrip(vhost.url, 'in_vhost');
      expect(body).toBe('hello in_vhost');
    } finally {
      await vhost.drop();
    }
    const management = new URL(rabbitManagementUrl());
    const auth = Buffer.from(`${management.username}:${management.password}`).toString('base64');
    management.username = '';
    management.password = '';
    const response = await fetch(new URL(`/api/vhosts/${encodeURIComponent(vhost.vhost)}`, management), {
      headers: { authorization: `Basic ${auth}` },
    });
    expect(response.status).toBe(404);
  });
});

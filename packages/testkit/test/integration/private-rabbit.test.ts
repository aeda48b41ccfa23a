import net from 'node:net';
import amqp from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ephemeralPortRange, type PrivateRabbit, serviceUrl, startPrivateRabbit } from '../../src/index.js';

describe('startPrivateRabbit', () => {
  let rabbit: PrivateRabbit;
  beforeAll(async () => {
    const started = Date.now();
    rabbit = await startPrivateRabbit();
    console.log(
      `[private] rabbitmq node ${rabbit.nodeName} started in ${Date.now() - started} ms at ${rabbit.url}`,
    );
  });
  afterAll(() => rabbit?.destroy());

  it('is a node of its own, not the shared one', async () => {
    expect(rabbit.url).not.toBe(serviceUrl('rabbitmq'));
    expect(await rabbit.ctl('status')).toContain(rabbit.nodeName);
  });

  it('keeps a durable queue across restart()', async () => {
    const connection = await amqp.connect(rabbit.url);
    const channel = await connection.createConfirmChannel();
    await channel.assertQueue('kept', { durable: true });
    channel.sendToQueue('kept', Buffer.from('persisted'), { persistent: true });
    await channel.waitForConfirms();
    await connection.close();
    const started = Date.now();
    await rabbit.restart();
    console.log(`[private] rabbitmq restart took ${Date.now() - started} ms`);
    const again = await amqp.connect(rabbit.url);
    try {
      const reader = await again.createChannel();
      const message = await reader.get('kept', { noAck: true });
      expect(message ? message.content.toString() : undefined).toBe('persisted');
    } finally {
      await again.close();
    }
  });

  it('drops connections on kill() and accepts them again after start()', async () => {
    const connection = await amqp.connect(rabbit.url);
    const closed = new Promise<void>((resolve) => {
      connection.once('close', () => resolve());
      connection.on('error', () => {});
    });
    await rabbit.kill();
    await closed;
    await expect(amqp.connect(rabbit.url)).rejects.toThrow();
    await rabbit.start();
    const again = await amqp.connect(rabbit.url);
    await again.close();
  });

  it('listens below the ephemeral port range, where no listen(0) or connection of another test is given its port while it is stopped', () => {
    const { low } = ephemeralPortRange();
    expect(rabbit.port).toBeLessThan(low);
    expect(rabbit.distPort).toBeLessThan(low);
  });

  it('does not pass for started when another process took its port while it was stopped', async () => {
    await rabbit.stop();
    const holder = net.createServer((socket) => socket.destroy());
    try {
      await new Promise<void>((resolve, reject) => {
        holder.once('error', reject);
        holder.listen(rabbit.port, '127.0.0.1', () => resolve());
      });
      // Before: resolved at once (the port answered: the other process), and the node then failed
      // to boot on eaddrinuse; a test went on to wait for a broker that was never there.
      await expect(rabbit.start()).rejects.toThrow(`port ${rabbit.port} is taken`);
      expect(rabbit.running).toBe(false);
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
    await rabbit.start();
    const again = await amqp.connect(rabbit.url);
    await again.close();
  });
});

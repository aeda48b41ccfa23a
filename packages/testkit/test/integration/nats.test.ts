import { connect, StringCodec } from 'nats';
import { describe, expect, it } from 'vitest';
import { createNamespace } from '../../src/index.js';
import { requireService, smokeLine } from './smoke.js';

describe('NATS smoke', () => {
  it('publishes and receives on a subject of its own', async () => {
    const url = await requireService('nats', 'NATS');
    const connection = await connect({ servers: url, timeout: 5_000 });
    try {
      const codec = StringCodec();
      const subject = `${createNamespace('nats_smoke').queuePrefix}greeting`;
      const subscription = connection.subscribe(subject, { max: 1 });
      connection.publish(subject, codec.encode('hello nats'));
      let received = '';
      for await (const message of subscription) received = codec.decode(message.data);
      expect(received).toBe('hello nats');
      smokeLine('nats', connection.info?.version ?? '?', url);
    } finally {
      await connection.close();
    }
  });
});

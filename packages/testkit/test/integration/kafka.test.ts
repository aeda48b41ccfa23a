import { Admin, Consumer, Producer, stringDeserializers, stringSerializers } from '@platformatic/kafka';
import { describe, expect, it } from 'vitest';
import { brokerList, clearKafkaTopics, createNamespace } from '../../src/index.js';
import { requireService, smokeLine } from './smoke.js';

describe('Kafka smoke', () => {
  it('creates a topic, produces one message and consumes it (@platformatic/kafka)', async () => {
    const brokers = brokerList(await requireService('kafka', 'Kafka'));
    const { topicPrefix, name } = createNamespace('kafka_smoke');
    const topic = `${topicPrefix}smoke`;
    const admin = new Admin({ clientId: name, bootstrapBrokers: brokers });
    const producer = new Producer({
      clientId: name,
      bootstrapBrokers: brokers,
      serializers: stringSerializers,
    });
    const consumer = new Consumer({
      clientId: name,
      groupId: name,
      bootstrapBrokers: brokers,
      deserializers: stringDeserializers,
    });
    try {
      await admin.createTopics({ topics: [topic], partitions: 1, replicas: 1 });
      const metadata = await admin.metadata({ topics: [topic] });
      expect(metadata.topics.get(topic)?.partitionsCount).toBe(1);
      await producer.send({ messages: [{ topic, key: 'k1', value: `hello ${name}` }] });
      const stream = await consumer.consume({ topics: [topic], mode: 'earliest', autocommit: true });
      let received: { key: string; value: string } | undefined;
      for await (const message of stream) {
        received = { key: message.key, value: message.value };
        break;
      }
      await stream.close();
      expect(received).toEqual({ key: 'k1', value: `hello ${name}` });
      expect(await clearKafkaTopics(topicPrefix, brokers)).toEqual([topic]);
      smokeLine('kafka', `${metadata.brokers.size} broker(s)`, brokers.join(','));
    } finally {
      await consumer.close(true);
      await producer.close();
      await admin.close();
    }
  });
});

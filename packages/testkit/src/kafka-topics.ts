import { brokerList } from './env.js';

/**
 * Deletes every Kafka topic whose name starts with `prefix` (a namespace's `topicPrefix`) on
 * the brokers of `KAFKA_BROKERS` (or `brokers`), and returns their names. The client,
 * @platformatic/kafka, is imported only here.
 */
export async function clearKafkaTopics(prefix: string, brokers: string[] = brokerList()): Promise<string[]> {
  if (prefix.length === 0) throw new Error('clearKafkaTopics needs a non-empty prefix');
  const { Admin } = await import('@platformatic/kafka');
  const admin = new Admin({ clientId: 'noa-testkit', bootstrapBrokers: brokers });
  try {
    const topics = (await admin.listTopics()).filter((topic) => topic.startsWith(prefix));
    if (topics.length > 0) await admin.deleteTopics({ topics });
    return topics;
  } finally {
    await admin.close();
  }
}

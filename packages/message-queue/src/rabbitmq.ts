/**
 * `@noa/message-queue/rabbitmq`: the RabbitMQ backend (needs the optional peer `amqplib`). Its own
 * entry so a memory-only or Redis-only app type-checks without amqplib (decision 010). Its state
 * store, `RedisJobStateStore`, comes from `@noa/message-queue/redis`.
 */
export {
  RabbitMqProvider,
  type RabbitMqProviderOptions,
  rabbitMqProviderOptionsSchema,
} from './providers/rabbitmq-provider.js';

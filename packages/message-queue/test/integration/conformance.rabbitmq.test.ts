import { isReachable, serviceUrl } from '@noa/testkit';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { describeQueueConformance } from '../conformance/queue-conformance.js';

const url = serviceUrl('rabbitmq');
const reachable = await isReachable('rabbitmq');
if (!reachable) console.log(`skipped: no RabbitMQ at ${url}`);

describeQueueConformance({
  name: 'rabbitmq',
  skipReason: reachable ? undefined : `no RabbitMQ at ${url}`,
  capabilities: RabbitMqProvider.capabilities,
  create: async () => new RabbitMqProvider({ url }),
  cleanupQueue: (provider, queue) => (provider as RabbitMqProvider).deleteQueue(queue),
});

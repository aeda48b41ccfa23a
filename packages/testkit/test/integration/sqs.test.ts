import {
  CreateQueueCommand,
  DeleteMessageCommand,
  ListQueuesCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { describe, expect, it } from 'vitest';
import { clearSqsQueues, uniqueName } from '../../src/index.js';
import { requireService, smokeLine } from './smoke.js';

describe('SQS (moto) smoke', () => {
  it('creates a queue, sends a message and receives it', async () => {
    const endpoint = await requireService('sqs', 'SQS (moto)');
    const sqs = new SQSClient({
      endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
    try {
      const name = uniqueName('queue');
      const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: name }));
      expect(QueueUrl).toMatch(new RegExp(`/${name}$`));
      await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: 'hello sqs' }));
      const received = await sqs.send(
        new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 1, WaitTimeSeconds: 2 }),
      );
      const message = received.Messages?.[0];
      expect(message?.Body).toBe('hello sqs');
      await sqs.send(new DeleteMessageCommand({ QueueUrl, ReceiptHandle: message?.ReceiptHandle }));
      await sqs.send(new CreateQueueCommand({ QueueName: `${name}_second` }));
      // Both queues of the prefix go, and nothing else.
      expect((await clearSqsQueues(name, endpoint)).length).toBe(2);
      const left = await sqs.send(new ListQueuesCommand({ QueueNamePrefix: name }));
      expect(left.QueueUrls ?? []).toEqual([]);
      smokeLine('sqs', 'moto', endpoint);
    } finally {
      sqs.destroy();
    }
  });
});

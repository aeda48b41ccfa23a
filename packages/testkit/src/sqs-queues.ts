import { serviceUrl } from './env.js';

/**
 * Deletes every SQS queue whose name starts with `prefix` at `SQS_ENDPOINT` (moto here; creds
 * test/test, us-east-1 unless the AWS_* env vars say otherwise) and returns their URLs.
 * SQS queue names allow `[A-Za-z0-9_-]`, so use a namespace's `name`, not its `queuePrefix`.
 */
export async function clearSqsQueues(
  prefix: string,
  endpoint: string = serviceUrl('sqs'),
): Promise<string[]> {
  if (prefix.length === 0) throw new Error('clearSqsQueues needs a non-empty prefix');
  const { DeleteQueueCommand, ListQueuesCommand, SQSClient } = await import('@aws-sdk/client-sqs');
  const sqs = new SQSClient({
    endpoint,
    region: process.env.AWS_REGION || 'us-east-1',
    credentials: {
      accessKeyId: process.env.AWS_ACCESS_KEY_ID || 'test',
      secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY || 'test',
    },
  });
  try {
    const { QueueUrls = [] } = await sqs.send(new ListQueuesCommand({ QueueNamePrefix: prefix }));
    for (const QueueUrl of QueueUrls) await sqs.send(new DeleteQueueCommand({ QueueUrl }));
    return QueueUrls;
  } finally {
    sqs.destroy();
  }
}

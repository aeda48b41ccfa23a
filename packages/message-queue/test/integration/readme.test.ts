import { isReachable, serviceUrl } from '@noa/testkit';
import { describe, it } from 'vitest';
import { readmeBlocks, runReadmeBlock } from '../readme-examples.js';

const up = (await isReachable('redis')) && (await isReachable('rabbitmq'));
if (!up)
  console.log(`skipped: no Redis at ${serviceUrl('redis')} or no RabbitMQ at ${serviceUrl('rabbitmq')}`);

describe.skipIf(!up)('README examples (Redis and RabbitMQ)', () => {
  it('the provider swap example runs on both', async () => {
    for (const [index, block] of readmeBlocks('test:integration').entries()) {
      await runReadmeBlock(block, `integration-${index}`);
    }
  });
});

import path from 'node:path';
import { isReachable, readmeBlocks, runReadmeBlock, serviceUrl } from '@noa/testkit';
import { describe, it } from 'vitest';

const packageDir = path.resolve(import.meta.dirname, '../..');
const up = (await isReachable('redis')) && (await isReachable('rabbitmq'));
if (!up)
  console.log(`skipped: no Redis at ${serviceUrl('redis')} or no RabbitMQ at ${serviceUrl('rabbitmq')}`);

describe.skipIf(!up)('README examples (Redis and RabbitMQ)', () => {
  it('the provider swap example runs on both', async () => {
    for (const block of readmeBlocks(packageDir).filter((found) => found.tag === 'integration')) {
      await runReadmeBlock(packageDir, block.code);
    }
  });
});

import path from 'node:path';
import { isReachable, readmeBlocks, runReadmeBlock, serviceUrl } from '@noa/testkit';
import { describe, expect, it } from 'vitest';

const packageDir = path.resolve(import.meta.dirname, '../..');
const up = (await isReachable('redis')) && (await isReachable('rabbitmq'));
if (!up)
  console.log(`skipped: no Redis at ${serviceUrl('redis')} or no RabbitMQ at ${serviceUrl('rabbitmq')}`);

describe.skipIf(!up)('README examples (Redis and RabbitMQ)', () => {
  const blocks = readmeBlocks(packageDir).filter((found) => found.tag === 'integration');

  it('the provider swap example runs on both', async () => {
    await runReadmeBlock(packageDir, blocks[0]!.code);
  });

  it('the RabbitMQ state store example dedupes, stores the result and counts exactly', async () => {
    const logged = await runReadmeBlock(packageDir, blocks[1]!.code);
    expect(logged).toEqual([[true, false], ['completed', 'sent to ada@example.com'], [1]]);
  });
});

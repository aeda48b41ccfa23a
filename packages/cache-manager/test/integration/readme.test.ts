import path from 'node:path';
import { readmeBlocks, runReadmeBlock } from '@noa/testkit';
import { describe, expect, it } from 'vitest';
import { redisUp } from './helpers.js';

const packageDir = path.resolve(import.meta.dirname, '../..');
const blocks = readmeBlocks(packageDir)
  .filter((block) => block.tag === 'redis')
  .map((block) => block.code);

describe.skipIf(!redisUp)('README examples (Redis)', () => {
  it('has examples to run', () => {
    expect(blocks.length).toBeGreaterThan(0);
  });
  it.each(blocks.map((code, index) => [index, code] as const))('example %i runs', async (_index, code) => {
    await runReadmeBlock(packageDir, code);
  });
});

import { describe, expect, it } from 'vitest';
import { readmeBlocks, runBlock } from '../readme-blocks.js';
import { redisUp } from './helpers.js';

const blocks = readmeBlocks('test:redis');

describe.skipIf(!redisUp)('README examples (Redis)', () => {
  it('has examples to run', () => {
    expect(blocks.length).toBeGreaterThan(0);
  });
  it.each(blocks.map((code, index) => [index, code] as const))('example %i runs', async (index, code) => {
    await runBlock(code, `redis-${index}`);
  });
});

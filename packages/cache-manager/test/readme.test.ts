import { describe, expect, it } from 'vitest';
import { readmeBlocks, runBlock } from './readme-blocks.js';

const blocks = readmeBlocks('test');

describe('README examples (memory only)', () => {
  it('has examples to run', () => {
    expect(blocks.length).toBeGreaterThan(0);
  });
  it.each(blocks.map((code, index) => [index, code] as const))('example %i runs', async (index, code) => {
    await runBlock(code, `memory-${index}`);
  });
});

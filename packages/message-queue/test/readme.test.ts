import { describe, expect, it } from 'vitest';
import { readmeBlocks, runReadmeBlock } from './readme-examples.js';

describe('README examples (memory provider)', () => {
  const blocks = readmeBlocks('test');

  it('has the examples', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(4);
  });

  it('quick start completes a job', async () => {
    expect(await runReadmeBlock(blocks[0]!, 'quick-start')).toEqual(['completed']);
  });

  it('worker example dead-letters, keeps the error history and redrives', async () => {
    const logged = await runReadmeBlock(blocks[1]!, 'worker');
    expect(JSON.parse(logged[0]!)).toHaveLength(2);
  });

  it('scheduler example fires the one-off and the interval job', async () => {
    await runReadmeBlock(blocks[2]!, 'scheduler');
  });

  it('flow example sums the children results', async () => {
    expect(await runReadmeBlock(blocks[3]!, 'flow')).toEqual(['14']);
  });
});

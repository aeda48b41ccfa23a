import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readmeBlocks, runReadmeBlock } from '../../src/index.js';

const packageDir = path.resolve(import.meta.dirname, '../..');
const examples = readmeBlocks(packageDir)
  .filter((block) => block.tag === undefined)
  .map((block) => block.code);

describe('README examples', () => {
  it('has examples marked as tests', () => {
    expect(examples.length).toBeGreaterThanOrEqual(4);
  });

  examples.forEach((code, index) => {
    const firstLine = code.split('\n').find((line) => !line.startsWith('import') && line.trim()) ?? '';
    it(`example ${index + 1} runs: ${firstLine.slice(0, 60)}`, async () => {
      await runReadmeBlock(packageDir, code);
    });
  });
});

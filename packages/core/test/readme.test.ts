import path from 'node:path';
import { expectedOutputs, formatLogs, readmeBlocks, runReadmeBlock } from '@noa/testkit';
import { describe, expect, it } from 'vitest';

// Every ```ts block of the README runs as a module, and each `console.log(…); // → x` line
// must print x (the text before any parenthesised remark), so the docs cannot rot.
const packageDir = path.resolve(import.meta.dirname, '..');
const blocks = readmeBlocks(packageDir, { all: true }).map((block) => block.code);

describe('README examples', () => {
  it('has examples with checked output', () => {
    expect(blocks.length).toBeGreaterThan(0);
    expect(blocks.flatMap(expectedOutputs).length).toBeGreaterThan(0);
  });

  blocks.forEach((code, index) => {
    it(`example ${index + 1} runs and prints what it says`, async () => {
      const printed = formatLogs(await runReadmeBlock(packageDir, code));
      expect(printed).toEqual(expectedOutputs(code));
    });
  });
});

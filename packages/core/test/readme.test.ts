import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { format } from 'node:util';
import { afterAll, describe, expect, it, vi } from 'vitest';

// Every ```ts block of the README runs as a module, and each `console.log(…); // → x` line
// must print x (the text before any parenthesised remark), so the docs cannot rot.
const packageDir = path.resolve(import.meta.dirname, '..');
const readme = readFileSync(path.join(packageDir, 'README.md'), 'utf8');
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1]!);
const scratch = path.join(packageDir, 'test', '.readme');

function expectedOutputs(code: string): string[] {
  return [...code.matchAll(/console\.log\(.*\/\/ → (.*)$/gm)].map((match) =>
    match[1]!.replace(/\s*\(.*\)\s*$/, ''),
  );
}

describe('README examples', () => {
  mkdirSync(scratch, { recursive: true });
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('has examples with checked output', () => {
    expect(blocks.length).toBeGreaterThan(0);
    expect(blocks.flatMap(expectedOutputs).length).toBeGreaterThan(0);
  });

  blocks.forEach((code, index) => {
    it(`example ${index + 1} runs and prints what it says`, async () => {
      const file = path.join(scratch, `example-${index + 1}.ts`);
      writeFileSync(file, code.replaceAll("from '@noa/core'", "from '../../src/index.js'"));
      const printed: string[] = [];
      const spy = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
        printed.push(format(...args));
      });
      try {
        await import(file);
      } finally {
        spy.mockRestore();
      }
      expect(printed).toEqual(expectedOutputs(code));
    });
  });
});

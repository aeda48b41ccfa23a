import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const packageDir = fileURLToPath(new URL('../..', import.meta.url));
const readme = readFileSync(path.join(packageDir, 'README.md'), 'utf8');
/** Every ```ts block right after a `<!-- test -->` line. */
const examples = [...readme.matchAll(/<!-- test -->\s*```ts\n([\s\S]*?)```/g)].map((match) => match[1] ?? '');
// Inside the package so its dependencies (pg, amqplib, …) resolve; git ignores **/test/.readme/.
const scratch = path.join(packageDir, 'test', '.readme');

describe('README examples', () => {
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('has examples marked as tests', () => {
    expect(examples.length).toBeGreaterThanOrEqual(4);
  });

  examples.forEach((code, index) => {
    const firstLine = code.split('\n').find((line) => !line.startsWith('import') && line.trim()) ?? '';
    it(`example ${index + 1} runs: ${firstLine.slice(0, 60)}`, async () => {
      mkdirSync(scratch, { recursive: true });
      const file = path.join(scratch, `example-${index + 1}.ts`);
      // The package cannot import itself by name here; point the import at its entry.
      writeFileSync(file, code.replaceAll(`from '@noa/testkit'`, `from '../../src/index.ts'`));
      await import(pathToFileURL(file).href);
    });
  });
});

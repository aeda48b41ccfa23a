import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const packageDir = path.resolve(import.meta.dirname, '..');
const scratch = path.join(packageDir, 'test/.readme-scratch');

/** The ```ts blocks of README.md preceded by `<!-- <marker> -->`, in order. */
export function readmeBlocks(marker: 'test' | 'test:redis'): string[] {
  const readme = readFileSync(path.join(packageDir, 'README.md'), 'utf8');
  const pattern = new RegExp(`<!-- ${marker} -->\\s*\`\`\`ts\\n([\\s\\S]*?)\`\`\``, 'g');
  return [...readme.matchAll(pattern)].map((match) => match[1]!);
}

/**
 * Runs one README block as a module: the package import is pointed at src/, the file lives
 * in the package (so `ioredis` and friends resolve) and is removed afterwards.
 */
export async function runBlock(code: string, name: string): Promise<void> {
  mkdirSync(scratch, { recursive: true });
  const file = path.join(scratch, `${name}.ts`);
  // The scratch file sits two levels below the package root.
  const entry = ['..', '..', 'src', 'index.js'].join('/');
  writeFileSync(file, code.replaceAll("from '@noa/cache-manager'", `from '${entry}'`));
  try {
    await import(pathToFileURL(file).href);
  } finally {
    rmSync(file, { force: true });
  }
}

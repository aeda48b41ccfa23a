import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const packageDir = path.resolve(import.meta.dirname, '..');

/** The ```ts blocks of README.md preceded by `<!-- <marker> -->`. */
export function readmeBlocks(marker: string): string[] {
  const readme = readFileSync(path.join(packageDir, 'README.md'), 'utf8');
  const pattern = new RegExp(`<!-- ${marker} -->\\n\`\`\`ts\\n([\\s\\S]*?)\`\`\``, 'g');
  return [...readme.matchAll(pattern)].map((match) => match[1]!);
}

/**
 * Writes a README block as a module (importing this package's source instead of its published
 * name) and imports it, so the example runs exactly as written. Returns what it logged.
 */
export async function runReadmeBlock(code: string, name: string): Promise<string[]> {
  const dir = path.join(packageDir, 'test', '.readme-tmp');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}-${process.pid}.ts`);
  const source = code.replaceAll("'@noa/message-queue'", `'${path.join(packageDir, 'src', 'index.ts')}'`);
  writeFileSync(file, `${source}\nexport {};\n`);
  const logged: string[] = [];
  const original = console.log;
  console.log = (...args: unknown[]) => {
    logged.push(args.map((arg) => (typeof arg === 'string' ? arg : JSON.stringify(arg))).join(' '));
  };
  try {
    await import(file);
  } finally {
    console.log = original;
    rmSync(file, { force: true });
  }
  return logged;
}

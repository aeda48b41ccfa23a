import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { format } from 'node:util';

/**
 * Runs a package README's examples as modules, so the docs cannot rot. Every package's
 * README test uses this one runner and keeps its own assertions.
 */

/** One ```ts block of a README (or of a guide under the package's `docs/`). */
export interface ReadmeBlock {
  /** `redis` for `<!-- test:redis -->` or `<!-- test: redis -->`; undefined for `<!-- test -->`. */
  tag: string | undefined;
  code: string;
  /** 1-based line of the block in its file, for test names. */
  line: number;
  /** The file the block is in, relative to the package: `README.md` or `docs/<name>.md`. */
  file: string;
}

/**
 * The markdown files whose examples a package's README test runs: `README.md`, then every
 * `docs/*.md` of the package in name order (guides the README links to), relative paths.
 */
export function documentationFiles(packageDir: string): string[] {
  const docs = path.join(packageDir, 'docs');
  const guides = existsSync(docs)
    ? readdirSync(docs)
        .filter((name) => name.endsWith('.md'))
        .sort()
        .map((name) => `docs/${name}`)
    : [];
  return ['README.md', ...guides];
}

/**
 * The ```ts blocks of `<packageDir>/README.md`, then of each `<packageDir>/docs/*.md` in name
 * order, marked by a `<!-- test -->` (or `<!-- test:tag -->`) line just before them, in order;
 * with `all`, every ```ts block.
 */
export function readmeBlocks(packageDir: string, options: { all?: boolean } = {}): ReadmeBlock[] {
  const pattern = options.all
    ? /()```ts\n([\s\S]*?)```/g
    : /<!-- test(?::\s*([\w-]+))? -->\s*```ts\n([\s\S]*?)```/g;
  return documentationFiles(packageDir).flatMap((file) => {
    const text = readFileSync(path.join(packageDir, file), 'utf8');
    return [...text.matchAll(pattern)].map((match) => ({
      tag: match[1] || undefined,
      code: match[2]!,
      line: text.slice(0, match.index).split('\n').length,
      file,
    }));
  });
}

/**
 * `code` with the package's own imports pointed at its sources: the bare name at
 * `src/index.ts`, a subpath at its `@noa/source` export. Throws for a subpath the package does
 * not export (the README would send users to a module that does not exist).
 */
export function withPackageSources(packageDir: string, code: string): string {
  const { name, exports = {} } = JSON.parse(readFileSync(path.join(packageDir, 'package.json'), 'utf8')) as {
    name: string;
    exports?: Record<string, { '@noa/source'?: string } | string>;
  };
  const escaped = name.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  return code.replace(
    new RegExp(`(['"])${escaped}(/[\\w./-]+)?\\1`, 'g'),
    (specifier, _quote, subpath?: string) => {
      if (subpath === undefined) return JSON.stringify(path.join(packageDir, 'src', 'index.ts'));
      const conditions = exports[`.${subpath}`];
      const source = typeof conditions === 'object' ? conditions['@noa/source'] : undefined;
      if (source === undefined)
        throw new Error(`the README imports ${specifier}, which ${name} does not export`);
      return JSON.stringify(path.join(packageDir, source));
    },
  );
}

/**
 * Runs one block as a module and returns the arguments of each `console.log` call it made.
 * The file is written under `<packageDir>/node_modules/.readme/` (so the package's own
 * dependencies resolve, and neither git nor Biome sees it) with the package's published name
 * pointed at its `src/index.ts` and each subpath it imports (`@noa/connection-pool/pg`) at the
 * source its `@noa/source` export condition names, and removed afterwards. Its name is new
 * for every run: a module imported once is never evaluated again in that process, and a
 * counter restarts with every fresh instance of this module (`vi.resetModules()`).
 */
export async function runReadmeBlock(packageDir: string, code: string): Promise<unknown[][]> {
  const source = withPackageSources(packageDir, code);
  const scratch = path.join(packageDir, 'node_modules', '.readme');
  mkdirSync(scratch, { recursive: true });
  const file = path.join(scratch, `block-${process.pid}-${randomUUID()}.ts`);
  writeFileSync(file, `${source}\nexport {};\n`);
  const calls: unknown[][] = [];
  const original = console.log;
  console.log = (...args: unknown[]) => {
    calls.push(args);
  };
  try {
    await import(pathToFileURL(file).href);
  } finally {
    console.log = original;
    rmSync(file, { force: true });
  }
  return calls;
}

/** Each `console.log` call as the terminal would print it. */
export function formatLogs(calls: unknown[][]): string[] {
  return calls.map((args) => format(...args));
}

/**
 * What a block says it prints: for each `console.log(…); // → x` line, `x` without a trailing
 * parenthesised remark.
 */
export function expectedOutputs(code: string): string[] {
  return [...code.matchAll(/console\.log\(.*\/\/ → (.*)$/gm)].map((match) =>
    match[1]!.replace(/\s*\(.*\)\s*$/, ''),
  );
}

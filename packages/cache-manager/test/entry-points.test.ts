import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import {
  declarationCompilerOptions,
  emitDeclarations,
  entryShapeProblems,
  packagesReachedFrom,
} from '@noa/testkit/declarations';
import ts from 'typescript';
import { beforeAll, describe, expect, it } from 'vitest';

// What a user compiling with `skipLibCheck: false` meets: the cache's declaration files and every
// module they import. ioredis and prom-client are optional peers (a memory-only cache needs
// neither), so no declaration reachable from the entry may import them: a memory-only user
// without them got TS2307. The declarations are built in memory from src/ and compiled against
// like a user's app would (the package has one entry: `exports` lists only `.`).
const packageDir = path.resolve(import.meta.dirname, '..');
const sourceDir = path.join(packageDir, 'src');
const optionalPeers = ['ioredis', 'prom-client'];

const options = declarationCompilerOptions;

/**
 * Type-checks `code` (an app importing the cache from `@noa/cache-manager`) with `skipLibCheck:
 * false` against the in-memory declarations, as if they were the installed package's, with the
 * optional peers in `missing` not installed (for the cache's files: @noa/core keeps its own
 * dependencies). Returns the diagnostics, formatted.
 */
function typeCheckApp(code: string, declarations: Map<string, string>, missing: readonly string[]): string[] {
  const app = path.join(packageDir, 'test', '__app__.ts');
  const files = new Map(declarations);
  files.set(app, code.replaceAll("'@noa/cache-manager'", "'../src/index.js'"));
  const isHiddenSource = (fileName: string) => {
    const resolved = path.resolve(fileName);
    return resolved.startsWith(sourceDir + path.sep) && !files.has(resolved);
  };
  const host = ts.createCompilerHost({ ...options, skipLibCheck: false });
  const { fileExists, readFile, getSourceFile } = host;
  host.fileExists = (fileName) =>
    files.has(path.resolve(fileName)) || (!isHiddenSource(fileName) && fileExists(fileName));
  host.readFile = (fileName) =>
    files.get(path.resolve(fileName)) ?? (isHiddenSource(fileName) ? undefined : readFile(fileName));
  host.getSourceFile = (fileName, languageVersion, ...rest) => {
    const text = files.get(path.resolve(fileName));
    return text === undefined
      ? getSourceFile(fileName, languageVersion, ...rest)
      : ts.createSourceFile(fileName, text, languageVersion, true);
  };
  host.resolveModuleNameLiterals = (
    literals,
    containingFile,
    redirectedReference,
    compilerOptions,
    sourceFile,
  ) =>
    literals.map((literal) => {
      const fromCache = path.resolve(containingFile).startsWith(sourceDir + path.sep);
      if (fromCache && missing.includes(literal.text)) return { resolvedModule: undefined };
      const mode = ts.getModeForUsageLocation(sourceFile, literal, compilerOptions);
      return ts.resolveModuleName(
        literal.text,
        containingFile,
        compilerOptions,
        host,
        undefined,
        redirectedReference,
        mode,
      );
    });
  const program = ts.createProgram([app], { ...options, skipLibCheck: false, noEmit: true }, host);
  return ts
    .getPreEmitDiagnostics(program)
    .map(
      (diagnostic) =>
        `${diagnostic.file ? path.relative(packageDir, diagnostic.file.fileName) : ''}: TS${diagnostic.code} ${ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')}`,
    );
}

describe('declarations', () => {
  it('are those of the one entry, `.` (a subpath added to exports must be followed here too)', () => {
    const manifest = JSON.parse(readFileSync(path.join(packageDir, 'package.json'), 'utf8')) as {
      exports: Record<string, Record<string, string>>;
      publishConfig: { exports: Record<string, Record<string, string>> };
    };
    expect(manifest.exports).toEqual({
      '.': { '@noa/source': './src/index.ts', types: './dist/index.d.ts', default: './dist/index.js' },
    });
    expect(Object.keys(manifest.publishConfig.exports)).toEqual(['.']);
    expect(entryShapeProblems(packageDir)).toEqual([]);
  });

  let declarations: Map<string, string>;
  beforeAll(() => {
    declarations = emitDeclarations(packageDir);
  }, 60_000);

  it('reached from the entry import no optional peer', () => {
    const reached = [...packagesReachedFrom(path.join(sourceDir, 'index.d.ts'), declarations)];
    expect(reached.filter((module) => optionalPeers.includes(module))).toEqual([]);
  });

  it('let a memory-only app compile with skipLibCheck: false and neither ioredis nor prom-client', {
    timeout: 180_000, // a type-check that takes seconds alone took over 60 s on a loaded 2-core machine
  }, () => {
    const app = `
      import { Cache, type CacheOptions, type RedisClient } from '@noa/cache-manager';
      const options: CacheOptions = { ttlMs: 60_000, l1: { maxEntries: 100 } };
      const cache = new Cache(options);
      const value: { id: number } = await cache.getOrSet('user:1', async () => ({ id: 1 }));
      export const client: RedisClient | undefined = undefined;
      export { value };
      await cache.close();
    `;
    expect(typeCheckApp(app, declarations, optionalPeers)).toEqual([]);
  });

  it("take ioredis's Redis and Cluster (and nothing else) as the redis option, and a prom-client Registry", {
    timeout: 180_000, // a type-check that takes seconds alone took over 60 s on a loaded 2-core machine
  }, () => {
    const app = `
      import { Cache, type RedisClient } from '@noa/cache-manager';
      import { Cluster, Redis } from 'ioredis';
      import { Registry } from 'prom-client';
      declare const redis: Redis;
      declare const cluster: Cluster;
      export const single = new Cache({ redis, registry: new Registry() });
      export const clustered = new Cache({ redis: cluster });
      export const clients: RedisClient[] = [redis, cluster, new Redis({ lazyConnect: true })];
      // @ts-expect-error a URL is not a client
      new Cache({ redis: 'redis://localhost:6379' });
      // @ts-expect-error nor an object of another shape
      new Cache({ redis: { get: async (key: string) => key } });
      // @ts-expect-error nor an object that is not a Registry
      new Cache({ registry: { metrics: () => '' } });
    `;
    expect(typeCheckApp(app, declarations, [])).toEqual([]);
  });
});

describe('prom-client', () => {
  // The cache's metrics are made by @noa/core's MetricsFactory, which imports prom-client and has it
  // as a dependency; the cache's own code only names its `Registry` type (erased). A peer that no
  // code loads only made package managers warn or install it for nothing.
  it('is no peer: nothing the package runs imports it (only types do, and none reach the entry)', () => {
    const manifest = JSON.parse(readFileSync(path.join(packageDir, 'package.json'), 'utf8')) as {
      peerDependencies?: Record<string, string>;
      peerDependenciesMeta?: Record<string, unknown>;
    };
    const runtimeImports: string[] = [];
    const visit = (dir: string): void => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const file = path.join(dir, entry.name);
        if (entry.isDirectory()) visit(file);
        else if (entry.name.endsWith('.ts')) {
          const text = readFileSync(file, 'utf8');
          const value =
            /^import\s+(?!type\s)[^;]*?from\s+'prom-client'|\bimport\(\s*'prom-client'\s*\)|\brequire\(\s*'prom-client'\s*\)/m;
          if (value.test(text)) runtimeImports.push(path.relative(packageDir, file));
        }
      }
    };
    visit(sourceDir);
    expect(runtimeImports).toEqual([]);
    expect(manifest.peerDependencies?.['prom-client']).toBeUndefined();
    expect(manifest.peerDependenciesMeta?.['prom-client']).toBeUndefined();
  });
});

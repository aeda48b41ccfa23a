import { readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

// What a user compiling with `skipLibCheck: false` meets: the declaration files of each entry
// point, and every bare module they import. The drivers are optional peers, so an entry may only
// import the peer it is named for; the main entry none (a Postgres-only user must not need
// mongodb's, mysql2's or ioredis's types).
const packageDir = path.resolve(import.meta.dirname, '..');
const manifest = JSON.parse(readFileSync(path.join(packageDir, 'package.json'), 'utf8')) as {
  exports: Record<string, Record<string, string>>;
  publishConfig: { exports: Record<string, Record<string, string>> };
  peerDependencies: Record<string, string>;
};
const optionalPeers = Object.keys(manifest.peerDependencies);

/** Each entry point and the optional peers its declarations may import. */
const peersOfEntry: Record<string, string[]> = {
  '.': [],
  './pg': ['pg'],
  './mysql': ['mysql2'],
  './mongo': ['mongodb'],
  './redis': ['ioredis'],
  './sql': ['pg', 'mysql2'],
};

/** Declarations of the package's sources, emitted in memory (file name → text). */
function emitDeclarations(roots: string[]): Map<string, string> {
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2023,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    customConditions: ['@noa/source'],
    allowImportingTsExtensions: true,
    strict: true,
    skipLibCheck: true,
    declaration: true,
    emitDeclarationOnly: true,
    types: ['node'],
  };
  const program = ts.createProgram(roots, options);
  const declarations = new Map<string, string>();
  const sourceDir = path.join(packageDir, 'src') + path.sep;
  for (const file of program.getSourceFiles()) {
    if (!file.fileName.startsWith(sourceDir.replaceAll(path.sep, '/'))) continue;
    program.emit(file, (fileName, text) => declarations.set(path.resolve(fileName), text), undefined, true);
  }
  return declarations;
}

/**
 * Every module a declaration file makes `tsc` load: imports and re-exports (bare and relative),
 * `import('x')` types, and `/// <reference types="x" />` directives.
 */
function importsOf(text: string): string[] {
  const patterns = [
    /\bfrom\s+['"]([^'"]+)['"]/g,
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
    /^import\s+['"]([^'"]+)['"]/gm,
    /^\/\/\/\s*<reference\s+types=['"]([^'"]+)['"]/gm,
  ];
  return patterns.flatMap((pattern) => [...text.matchAll(pattern)].map((match) => match[1]!));
}

/** Every bare module reached from `entry`'s declaration file through relative imports. */
function modulesReachedFrom(entry: string, declarations: Map<string, string>): Set<string> {
  const reached = new Set<string>();
  const seen = new Set<string>();
  const pending = [entry];
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = declarations.get(file);
    if (text === undefined) throw new Error(`no declaration emitted for ${path.relative(packageDir, file)}`);
    for (const specifier of importsOf(text)) {
      if (specifier.startsWith('.'))
        pending.push(path.resolve(path.dirname(file), specifier.replace(/\.js$/, '.d.ts')));
      else
        reached.add(
          specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]!,
        );
    }
  }
  return reached;
}

describe('entry points', () => {
  it('are the main entry and one subpath per driver, in exports and in publishConfig.exports', () => {
    expect(Object.keys(manifest.exports)).toEqual(Object.keys(peersOfEntry));
    for (const [subpath, conditions] of Object.entries(manifest.exports)) {
      const name = subpath === '.' ? 'index' : subpath.slice(2);
      expect(conditions, subpath).toEqual({
        '@noa/source': `./src/${name}.ts`,
        types: `./dist/${name}.d.ts`,
        default: `./dist/${name}.js`,
      });
      // Condition order matters: the first that matches wins, and `types` must precede `default`.
      expect(Object.keys(conditions), subpath).toEqual(['@noa/source', 'types', 'default']);
      const { '@noa/source': _source, ...published } = conditions;
      expect(manifest.publishConfig.exports[subpath], subpath).toEqual(published);
      expect(Object.keys(manifest.publishConfig.exports[subpath]!), subpath).toEqual(['types', 'default']);
    }
    expect(Object.keys(manifest.publishConfig.exports)).toEqual(Object.keys(manifest.exports));
  });

  it("declare imports of no optional peer but the entry's own", { timeout: 60_000 }, () => {
    const sources = Object.fromEntries(
      Object.entries(manifest.exports).map(([subpath, conditions]) => [
        subpath,
        path.resolve(packageDir, conditions['@noa/source']!),
      ]),
    );
    const declarations = emitDeclarations(Object.values(sources));
    const peersReached = Object.fromEntries(
      Object.entries(sources).map(([subpath, source]) => [
        subpath,
        [...modulesReachedFrom(source.replace(/\.ts$/, '.d.ts'), declarations)]
          .filter((module) => optionalPeers.includes(module))
          .sort(),
      ]),
    );
    expect(peersReached).toEqual(
      Object.fromEntries(
        Object.entries(peersOfEntry).map(([subpath, peers]) => [subpath, [...peers].sort()]),
      ),
    );
  });
});

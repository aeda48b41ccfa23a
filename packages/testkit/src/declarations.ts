/**
 * What a user compiling with `skipLibCheck: false` meets: the declaration files of each entry
 * point of a package (its `exports`), emitted in memory from its sources, and the packages they
 * make `tsc` load. An optional peer reached from an entry is one its users must install (TS2307
 * otherwise). Kept out of the main entry: it loads the TypeScript compiler.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

interface Manifest {
  exports?: Record<string, Record<string, string> | string>;
  publishConfig?: { exports?: Record<string, Record<string, string> | string> };
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}

function manifestOf(packageDir: string): Manifest {
  return JSON.parse(readFileSync(path.join(packageDir, 'package.json'), 'utf8')) as Manifest;
}

/** The compiler options the in-memory declarations are emitted with (as the packages' builds). */
export const declarationCompilerOptions: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2023,
  lib: ['lib.es2023.d.ts'],
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  customConditions: ['@noa/source'],
  strict: true,
  noUncheckedIndexedAccess: true,
  types: ['node'],
};

/** The source file (`@noa/source` condition) of each entry of the package, by subpath. */
export function entrySources(packageDir: string): Record<string, string> {
  const entries = Object.entries(manifestOf(packageDir).exports ?? {});
  return Object.fromEntries(
    entries.flatMap(([subpath, conditions]) =>
      typeof conditions === 'object' && conditions['@noa/source']
        ? [[subpath, path.resolve(packageDir, conditions['@noa/source'])]]
        : [],
    ),
  );
}

/** Declarations of the package's sources under `src/`, emitted in memory (absolute file name → text). */
export function emitDeclarations(packageDir: string): Map<string, string> {
  const program = ts.createProgram(Object.values(entrySources(packageDir)), {
    ...declarationCompilerOptions,
    allowImportingTsExtensions: true,
    skipLibCheck: true,
    declaration: true,
    emitDeclarationOnly: true,
  });
  const sourceDir = path.join(packageDir, 'src') + path.sep;
  const declarations = new Map<string, string>();
  for (const file of program.getSourceFiles()) {
    if (!path.resolve(file.fileName).startsWith(sourceDir)) continue;
    program.emit(file, (fileName, text) => declarations.set(path.resolve(fileName), text), undefined, true);
  }
  return declarations;
}

/**
 * Every module a declaration file makes `tsc` load: imports and re-exports (bare and relative),
 * `import('x')` types, `/// <reference types="x" />` and module augmentations (`declare module 'x'`).
 */
export function declarationImports(text: string): string[] {
  const patterns = [
    /\bfrom\s+['"]([^'"]+)['"]/g,
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
    /^import\s+['"]([^'"]+)['"]/gm,
    /^\/\/\/\s*<reference\s+types=['"]([^'"]+)['"]/gm,
    /^\s*declare\s+module\s+['"]([^'"]+)['"]/gm,
  ];
  return patterns.flatMap((pattern) => [...text.matchAll(pattern)].map((match) => match[1]!));
}

/** The package a bare specifier names (`@scope/name` or `name`). */
const packageOf = (specifier: string) =>
  specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]!;

/** Every package reached from the declaration file `entry` through the package's own declarations. */
export function packagesReachedFrom(entry: string, declarations: Map<string, string>): Set<string> {
  const reached = new Set<string>();
  const seen = new Set<string>();
  const pending = [entry];
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = declarations.get(file);
    if (text === undefined) throw new Error(`no declaration emitted for ${file}`);
    for (const specifier of declarationImports(text)) {
      // An inferred type's `import("../x.ts")` says .ts where the package's own build says .js.
      if (specifier.startsWith('.'))
        pending.push(path.resolve(path.dirname(file), specifier.replace(/\.[jt]s$/, '.d.ts')));
      else reached.add(packageOf(specifier));
    }
  }
  return reached;
}

/**
 * The optional peers of the package as declaration files import them: `@types/express` is
 * imported as `express`.
 */
export function optionalPeers(packageDir: string): string[] {
  const { peerDependencies = {}, peerDependenciesMeta = {} } = manifestOf(packageDir);
  return Object.keys(peerDependencies)
    .filter((peer) => peerDependenciesMeta[peer]?.optional === true)
    .map((peer) =>
      peer.startsWith('@types/') ? peer.slice('@types/'.length).replace(/^(.+)__(.+)$/, '@$1/$2') : peer,
    );
}

/**
 * For each entry of the package (`.`, `./pg`…), the optional peers its declarations reach,
 * sorted: what a `skipLibCheck: false` user of that entry must install. `declarations` defaults
 * to those emitted from the sources now (a few seconds).
 */
export function optionalPeersByEntry(
  packageDir: string,
  declarations: Map<string, string> = emitDeclarations(packageDir),
): Record<string, string[]> {
  const peers = optionalPeers(packageDir);
  return Object.fromEntries(
    Object.entries(entrySources(packageDir)).map(([subpath, source]) => [
      subpath,
      [...packagesReachedFrom(source.replace(/\.ts$/, '.d.ts'), declarations)]
        .filter((module) => peers.includes(module))
        .sort(),
    ]),
  );
}

/**
 * What is wrong with the package's entry points as published: each entry `./<name>` must be
 * `{ '@noa/source': './src/<name>.ts', types: './dist/<name>.d.ts', default: './dist/<name>.js' }`
 * in that order (the first matching condition wins; `types` before `default`), `.` named `index`,
 * and `publishConfig.exports` the same entries without `@noa/source`. Empty when all is well.
 */
export function entryShapeProblems(packageDir: string): string[] {
  const { exports = {}, publishConfig } = manifestOf(packageDir);
  const problems: string[] = [];
  const published = publishConfig?.exports ?? {};
  if (Object.keys(published).join() !== Object.keys(exports).join())
    problems.push(
      `publishConfig.exports lists ${Object.keys(published).join(', ')}, exports ${Object.keys(exports).join(', ')}`,
    );
  for (const [subpath, conditions] of Object.entries(exports)) {
    const name = subpath === '.' ? 'index' : subpath.slice(2);
    const wanted = {
      '@noa/source': `./src/${name}.ts`,
      types: `./dist/${name}.d.ts`,
      default: `./dist/${name}.js`,
    };
    if (JSON.stringify(conditions) !== JSON.stringify(wanted))
      problems.push(
        `exports['${subpath}'] is ${JSON.stringify(conditions)}, expected ${JSON.stringify(wanted)}`,
      );
    const { '@noa/source': _source, ...rest } = wanted;
    if (JSON.stringify(published[subpath]) !== JSON.stringify(rest))
      problems.push(
        `publishConfig.exports['${subpath}'] is ${JSON.stringify(published[subpath])}, expected ${JSON.stringify(rest)}`,
      );
  }
  return problems;
}

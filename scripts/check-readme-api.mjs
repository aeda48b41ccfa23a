#!/usr/bin/env node
// Checks the project rule "every public API appears in the package README":
// for each non-private package under packages/, collects the names exported by
// src/index.ts and by every other entry point its package.json exports (subpaths, found by
// their `@noa/source` condition) and reports every name that does not appear as a word in the
// package's README.md. Prints `package: name` lines and exits 1 if any is missing.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { workspacePackages } from './workspace-packages.mjs';

/** Removes block and line comments (good enough for export statements). */
function stripComments(source) {
  return source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
}

/** Resolves a relative `.js` specifier to the `.ts` source file next to `fromFile`. */
function resolveSource(fromFile, specifier) {
  const base = join(dirname(fromFile), specifier);
  const candidates = [
    base.replace(/\.js$/, '.ts'),
    base.replace(/\.js$/, '.tsx'),
    `${base}.ts`,
    join(base, 'index.ts'),
    base,
  ];
  return candidates.find((file) => existsSync(file) && file.endsWith('.ts'));
}

/**
 * Exported names of a module: `export { a, b as c, type D } [from '...']`,
 * `export [declare] [default] [abstract] class/function/const/let/var/interface/type/enum X`,
 * and `export * from './x.js'` followed `depth` levels into the target file.
 */
function exportedNames(file, depth) {
  const source = stripComments(readFileSync(file, 'utf8'));
  const names = new Set();
  for (const match of source.matchAll(/export\s+(?:type\s+)?\{([^}]*)\}/g)) {
    for (const raw of match[1].split(',')) {
      const item = raw.trim().replace(/^type\s+/, '');
      if (!item) continue;
      const parts = item.split(/\s+as\s+/);
      names.add((parts[1] ?? parts[0]).trim());
    }
  }
  const declaration =
    /export\s+(?:declare\s+)?(?:default\s+)?(?:abstract\s+)?(?:async\s+)?(class|function\*?|const|let|var|interface|type|enum)\s+([A-Za-z_$][\w$]*)/g;
  for (const match of source.matchAll(declaration)) names.add(match[2]);
  for (const match of source.matchAll(/export\s+\*\s+as\s+([A-Za-z_$][\w$]*)\s+from/g)) names.add(match[1]);
  for (const match of source.matchAll(/export\s+(?:type\s+)?\*\s+from\s+['"]([^'"]+)['"]/g)) {
    if (depth <= 0 || !match[1].startsWith('.')) continue;
    const target = resolveSource(file, match[1]);
    if (!target) {
      console.error(`warning: cannot resolve ${match[1]} from ${file}`);
      continue;
    }
    for (const name of exportedNames(target, depth - 1)) names.add(name);
  }
  names.delete('default');
  return names;
}

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The source of each entry point: its `@noa/source` export condition (subpaths included). */
function entrySources(dir, manifest) {
  const sources = Object.values(manifest.exports ?? {})
    .map((conditions) => conditions?.['@noa/source'])
    .filter((source) => typeof source === 'string')
    .map((source) => join(dir, source));
  return sources.length > 0 ? sources : [join(dir, 'src', 'index.ts')];
}

const missing = [];
for (const { name: folder, dir, manifest } of workspacePackages()) {
  const indexFile = join(dir, 'src', 'index.ts');
  if (!existsSync(indexFile) || manifest.private) continue;
  const readmeFile = join(dir, 'README.md');
  const readme = existsSync(readmeFile) ? readFileSync(readmeFile, 'utf8') : '';
  const names = new Set(entrySources(dir, manifest).flatMap((file) => [...exportedNames(file, 1)]));
  for (const name of [...names].sort()) {
    const word = new RegExp(`(?<![\\w$])${escapeRegExp(name)}(?![\\w$])`);
    if (!word.test(readme)) missing.push(`${manifest.name ?? folder}: ${name}`);
  }
}

if (missing.length > 0) {
  for (const line of missing) console.log(line);
  console.error(`\n${missing.length} exported name(s) missing from package READMEs`);
  process.exit(1);
}
console.log('check-readme-api: every exported name appears in its package README');

#!/usr/bin/env node
// Enforces the dependency edges of CONVENTIONS.md: a package may depend only on the @noa
// packages listed here, must declare every @noa import in its package.json, and never
// reaches into another package's src/ or an example.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { root, workspacePackages } from './workspace-packages.mjs';

const allowed = {
  core: [],
  testkit: [],
  'rate-limiter': ['core'],
  'cache-manager': ['core'],
  'connection-pool': ['core'],
  'message-queue': ['core'],
  'service-registry': ['core'],
  'cdn-manager': ['core', 'cache-manager'],
  'database-optimizer': ['core'],
  'database-sharding': ['core', 'connection-pool'],
  'api-gateway': ['core', 'rate-limiter', 'service-registry', 'cache-manager'],
};
// Test and bench code may also use the private test kit.
const testOnly = ['testkit'];

const problems = [];

function filesUnder(dir) {
  let out = [];
  let entries = [];
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const entry of entries) {
    if (entry === 'node_modules' || entry === 'dist') continue;
    const full = path.join(dir, entry);
    if (statSync(full).isDirectory()) out = out.concat(filesUnder(full));
    else if (/\.(ts|mts|js|mjs)$/.test(entry)) out.push(full);
  }
  return out;
}

// Static imports/re-exports at the start of a line, side-effect imports, and dynamic
// import() of a literal; text inside other strings is not an import.
const importPatterns = [
  /^(?:import|export)\b[^;'"]*?\bfrom\s+['"]([^'"]+)['"]/gm,
  /^import\s+['"]([^'"]+)['"]/gm,
  /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
];

// The subpaths (`@noa/connection-pool/pg`) each package's `exports` declares: public entries too.
const subpathsByPackage = new Map(
  workspacePackages().map(({ name, manifest }) => [
    name,
    new Set(
      Object.keys(manifest.exports ?? {})
        .filter((key) => key.startsWith('./'))
        .map((key) => `@noa/${name}/${key.slice(2)}`),
    ),
  ]),
);
const exportedSubpaths = (target) => subpathsByPackage.get(target) ?? new Set();

for (const { name, dir, manifest } of workspacePackages()) {
  if (!(name in allowed)) {
    problems.push(
      `packages/${name}: not in the allowed-edges table of scripts/check-deps.mjs (add it, and to CONVENTIONS)`,
    );
    continue;
  }
  const declared = new Set(
    Object.keys({ ...manifest.dependencies, ...manifest.peerDependencies, ...manifest.devDependencies })
      .filter((dep) => dep.startsWith('@noa/'))
      .map((dep) => dep.slice(5)),
  );
  for (const dep of declared) {
    const inProd = Object.keys({ ...manifest.dependencies, ...manifest.peerDependencies }).includes(
      `@noa/${dep}`,
    );
    if (inProd && !allowed[name].includes(dep))
      problems.push(`packages/${name}: may not depend on @noa/${dep}`);
    if (!inProd && !allowed[name].includes(dep) && !testOnly.includes(dep))
      problems.push(`packages/${name}: devDependency @noa/${dep} is not an allowed edge`);
  }
  for (const file of filesUnder(dir)) {
    const relative = path.relative(root, file);
    const inSrc = relative.includes(`${path.sep}src${path.sep}`);
    const text = readFileSync(file, 'utf8');
    for (const match of importPatterns.flatMap((pattern) => [...text.matchAll(pattern)])) {
      const spec = match[1];
      if (spec.startsWith('@noa/')) {
        const target = spec.slice(5).split('/')[0];
        if (target === name) continue;
        if (!declared.has(target))
          problems.push(`${relative}: imports ${spec} without declaring @noa/${target}`);
        if (inSrc && testOnly.includes(target)) problems.push(`${relative}: src may not import ${spec}`);
        if (spec.split('/').length > 2 && !testOnly.includes(target) && !exportedSubpaths(target).has(spec))
          problems.push(`${relative}: imports ${spec}: use the package's public entries only (its exports)`);
      } else if (spec.startsWith('.')) {
        const resolved = path.resolve(path.dirname(file), spec);
        if (!resolved.startsWith(dir + path.sep))
          problems.push(`${relative}: relative import ${spec} leaves its package`);
      }
    }
  }
}

if (problems.length) {
  console.error(`dependency check failed:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log('dependency edges ok');

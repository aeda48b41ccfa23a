#!/usr/bin/env node
// Usage: pnpm new-package <name> "<one-line description>"
// Creates packages/<name> in the layout of CONVENTIONS.md: package.json with an exports map,
// files, engines and the bench script; tsconfig.build.json; src/index.ts, src/errors.ts;
// test/, test/integration/, bench/ with a runnable side-by-side skeleton; README skeleton.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const [name, description = 'TODO: one line on what this package does.'] = process.argv.slice(2);
if (!name || !/^[a-z][a-z0-9-]*$/.test(name)) {
  console.error('usage: pnpm new-package <kebab-name> "<description>"');
  process.exit(2);
}
const root = path.resolve(import.meta.dirname, '..');
const dir = path.join(root, 'packages', name);
if (existsSync(dir)) {
  console.error(`packages/${name} exists already`);
  process.exit(1);
}
const snake = name.replaceAll('-', '_');
const upper = snake.toUpperCase();
const title = name.replace(/(^|-)([a-z])/g, (_, dash, c) => (dash ? ' ' : '') + c.toUpperCase());

const files = {
  'package.json': `${JSON.stringify(
    {
      name: `@noa/${name}`,
      version: '0.1.0',
      description,
      type: 'module',
      license: 'MIT',
      engines: { node: '>=22.12.0' },
      exports: {
        '.': { '@noa/source': './src/index.ts', types: './dist/index.d.ts', import: './dist/index.js' },
      },
      // pnpm swaps this in at pack/publish time: the published exports have no source condition.
      publishConfig: { exports: { '.': { types: './dist/index.d.ts', import: './dist/index.js' } } },
      files: ['dist', 'README.md'],
      sideEffects: false,
      scripts: {
        build: 'tsc -p tsconfig.build.json',
        bench: 'node --conditions=@noa/source --import tsx bench/index.bench.ts',
      },
      dependencies: { '@noa/core': 'workspace:^', zod: '4.6.7' },
      peerDependencies: {},
      peerDependenciesMeta: {},
      devDependencies: { '@noa/testkit': 'workspace:*' },
    },
    null,
    2,
  )}\n`,
  'tsconfig.build.json': `${JSON.stringify(
    {
      extends: '../../tsconfig.base.json',
      compilerOptions: { rootDir: 'src', outDir: 'dist' },
      include: ['src/**/*.ts'],
    },
    null,
    2,
  )}\n`,
  'src/index.ts': `export { ${title.replaceAll(' ', '')}Error } from './errors.js';\n`,
  'src/errors.ts': `import { NoaError } from '@noa/core';

/** Base class of every error thrown by @noa/${name}; codes start with \`NOA_${upper}_\`. */
export class ${title.replaceAll(' ', '')}Error extends NoaError {}
`,
  'test/readme.test.ts': `import path from 'node:path';
import { expectedOutputs, formatLogs, readmeBlocks, runReadmeBlock } from '@noa/testkit';
import { describe, expect, it } from 'vitest';

// Every README block marked \`<!-- test -->\` runs, and each \`console.log(…); // → x\` prints x.
const packageDir = path.resolve(import.meta.dirname, '..');
const blocks = readmeBlocks(packageDir).filter((block) => block.tag === undefined);

describe('README examples', () => {
  it('has examples', () => {
    expect(blocks.length).toBeGreaterThan(0);
  });
  for (const block of blocks) {
    it(\`example at README.md line \${block.line}\`, async () => {
      expect(formatLogs(await runReadmeBlock(packageDir, block.code))).toEqual(expectedOutputs(block.code));
    });
  }
});
`,
  'test/integration/.gitkeep': '',
  'bench/index.bench.ts': `import path from 'node:path';
import { runBench } from '@noa/testkit/bench';

// Side-by-side cases: ours and the named anchor, same inputs, same service, one run.
await runBench('@noa/${name}', path.dirname(new URL(import.meta.url).pathname), []);
`,
  'README.md': `# @noa/${name}

${description}

## Install
\`\`\`sh
npm install @noa/${name}
\`\`\`

## Quick start
The shortest real use; \`test/readme.test.ts\` runs every block marked \`<!-- test -->\` and checks
each \`// → x\` output.

<!-- test -->
\`\`\`ts
import { ${title.replaceAll(' ', '')}Error } from '@noa/${name}';

console.log(new ${title.replaceAll(' ', '')}Error('NOA_${upper}_EXAMPLE', 'example').code); // → NOA_${upper}_EXAMPLE
\`\`\`

## Concepts

## Options
| option | type | default | meaning |
|---|---|---|---|

## Failure modes

## Metrics
| metric | type | labels |
|---|---|---|

## Benchmarks
Command: \`pnpm --filter @noa/${name} bench\` (results in \`bench/results.json\`).
`,
};

for (const [file, text] of Object.entries(files)) {
  const target = path.join(dir, file);
  mkdirSync(path.dirname(target), { recursive: true });
  writeFileSync(target, text);
}
// Format the generated files the way `pnpm lint` expects them.
spawnSync('pnpm', ['exec', 'biome', 'check', '--write', dir], { stdio: 'ignore', cwd: root });
console.log(`created packages/${name}: add it to scripts/check-deps.mjs allowed edges, then pnpm install`);

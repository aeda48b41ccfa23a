import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { withPackageSources } from '../src/readme.js';

const dir = mkdtempSync(path.join(tmpdir(), 'noa-readme-sources-'));
mkdirSync(path.join(dir, 'src'));
writeFileSync(
  path.join(dir, 'package.json'),
  JSON.stringify({
    name: '@noa/example',
    exports: {
      '.': { '@noa/source': './src/index.ts', default: './dist/index.js' },
      './pg': { '@noa/source': './src/pg.ts', default: './dist/pg.js' },
    },
  }),
);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('withPackageSources', () => {
  it("points the package's name at src/index.ts and each exported subpath at its @noa/source", () => {
    const code = [
      "import { Pool } from '@noa/example';",
      'import { createPgPool } from "@noa/example/pg";',
      "import { other } from '@noa/example-two';",
    ].join('\n');
    expect(withPackageSources(dir, code).split('\n')).toEqual([
      `import { Pool } from ${JSON.stringify(path.join(dir, 'src', 'index.ts'))};`,
      `import { createPgPool } from ${JSON.stringify(path.join(dir, 'src', 'pg.ts'))};`,
      "import { other } from '@noa/example-two';",
    ]);
  });

  it('refuses a subpath the package does not export, naming it', () => {
    expect(() => withPackageSources(dir, "import { x } from '@noa/example/mongo';")).toThrow(
      "the README imports '@noa/example/mongo', which @noa/example does not export",
    );
  });
});

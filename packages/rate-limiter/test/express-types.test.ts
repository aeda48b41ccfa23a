import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

// tsc over an Express user's file (test/types/express-user.ts), as a user compiles it: strict,
// nodenext, skipLibCheck false. `req.rateLimit` on Express's Request and `res.status()` in a
// refusal handler must type-check (they were TS2339).
it('an Express app using req.rateLimit and an Express-typed handler type-checks', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'rl-express-types-'));
  try {
    const config = path.join(dir, 'tsconfig.json');
    writeFileSync(
      config,
      JSON.stringify({
        extends: path.join(here, '..', '..', '..', 'tsconfig.base.json'),
        compilerOptions: {
          noEmit: true,
          skipLibCheck: false,
          customConditions: ['@noa/source'],
          allowImportingTsExtensions: true,
          types: ['node'],
          typeRoots: [path.join(here, '..', '..', '..', 'node_modules', '@types')],
        },
        files: [path.join(here, 'types', 'express-user.ts')],
      }),
    );
    const result = spawnSync(process.execPath, [tsc, '-p', config], { encoding: 'utf8', timeout: 120_000 });
    const errors = result.stdout.split('\n').filter((line) => line.includes('express-user.ts'));
    expect(errors).toEqual([]);
    expect(result.status).toBe(0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);

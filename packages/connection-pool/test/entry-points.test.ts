import path from 'node:path';
import { entryShapeProblems, optionalPeersByEntry } from '@noa/testkit/declarations';
import { describe, expect, it } from 'vitest';

// What a user compiling with `skipLibCheck: false` meets: the declaration files of each entry
// point, and every package they import. The drivers are optional peers, so an entry may only
// import the peer it is named for; the main entry none (a Postgres-only user must not need
// mongodb's, mysql2's or ioredis's types). Decision 010.
const packageDir = path.resolve(import.meta.dirname, '..');

describe('entry points', () => {
  it('are the main entry and one subpath per driver, in exports and in publishConfig.exports', () => {
    expect(entryShapeProblems(packageDir)).toEqual([]);
  });

  it("declare imports of no optional peer but the entry's own", { timeout: 60_000 }, () => {
    expect(optionalPeersByEntry(packageDir)).toEqual({
      '.': [],
      './pg': ['pg'],
      './mysql': ['mysql2'],
      './mongo': ['mongodb'],
      './redis': ['ioredis'],
      './sql': ['mysql2', 'pg'],
    });
  });
});

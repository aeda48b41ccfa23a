import path from 'node:path';
import { entryShapeProblems, optionalPeersByEntry } from '@noa/testkit/declarations';
import { describe, expect, it } from 'vitest';

// A user with `skipLibCheck: false` type-checks every declaration file the entry they import
// reaches: the main entry must reach no optional peer's types (TS2307 without fastify, ioredis or
// @types/express), and each framework or driver entry only its own (decision 010).
const packageDir = path.resolve(import.meta.dirname, '..');

describe('entries and optional peers', () => {
  it('are listed alike in exports and publishConfig.exports', () => {
    expect(entryShapeProblems(packageDir)).toEqual([]);
  });

  it("each reach no optional peer but their own (express: @types/express's module)", {
    timeout: 60_000,
  }, () => {
    expect(optionalPeersByEntry(packageDir)).toEqual({
      '.': [],
      './fastify': ['fastify'],
      './fastify-own-names': ['fastify'],
      './redis': ['ioredis'],
      './express': ['express'],
    });
  });
});

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// A user with `skipLibCheck: false` type-checks every declaration file the entry they import
// reaches: the main entry must reach no optional peer's types (TS2307 without fastify or ioredis).

const src = fileURLToPath(new URL('../src/', import.meta.url));
const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  exports: Record<string, Record<string, string>>;
  publishConfig: { exports: Record<string, Record<string, string>> };
  peerDependencies: Record<string, string>;
};

/** The bare module specifiers (packages) reached from `entry` through the package's own files. */
function packagesReachedFrom(entry: string): Set<string> {
  const reached = new Set<string>();
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(/(?:import|export)\s[^;]*?from\s+'([^']+)'|import\s+'([^']+)'/g)) {
      const specifier = match[1] ?? match[2]!;
      if (specifier.startsWith('.'))
        visit(path.resolve(path.dirname(file), specifier.replace(/\.js$/, '.ts')));
      else
        reached.add(
          specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]!,
        );
    }
    // `declare module 'fastify'` augments it: the declaration file needs fastify's types too.
    for (const match of text.matchAll(/declare module '([^']+)'/g)) reached.add(match[1]!);
  };
  visit(path.join(src, entry));
  return reached;
}

// `express` stands for @types/express, which the Express entry's declarations import.
const optionalPeers = [
  ...Object.keys(manifest.peerDependencies).filter((peer) => !peer.startsWith('@types/')),
  'express',
];

describe('entries and optional peers', () => {
  it('the main entry reaches no optional peer', () => {
    const reached = packagesReachedFrom('index.ts');
    expect(optionalPeers.filter((peer) => reached.has(peer))).toEqual([]);
  });

  for (const [subpath, file, peer] of [
    ['./fastify', 'fastify.ts', 'fastify'],
    ['./redis', 'redis.ts', 'ioredis'],
    ['./express', 'express.ts', 'express'],
  ] as const)
    it(`${subpath} is an entry of its own, the only one reaching ${peer}`, () => {
      expect(manifest.exports[subpath]).toEqual({
        '@noa/source': `./src/${file}`,
        types: `./dist/${file.replace('.ts', '.d.ts')}`,
        default: `./dist/${file.replace('.ts', '.js')}`,
      });
      expect(manifest.publishConfig.exports[subpath]).toEqual({
        types: `./dist/${file.replace('.ts', '.d.ts')}`,
        default: `./dist/${file.replace('.ts', '.js')}`,
      });
      const reached = packagesReachedFrom(file);
      expect(optionalPeers.filter((other) => reached.has(other))).toEqual([peer]);
    });
});

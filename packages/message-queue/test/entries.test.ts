import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const src = fileURLToPath(new URL('../src/', import.meta.url));

/** The bare specifiers reached through the relative imports (type imports too) of `entry`. */
function reachedPackages(entry: string): Set<string> {
  const seen = new Set<string>();
  const packages = new Set<string>();
  const walk = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const source = readFileSync(file, 'utf8');
    for (const [, specifier] of source.matchAll(/(?:from|import\()\s*'([^']+)'/g)) {
      if (specifier!.startsWith('.'))
        walk(path.resolve(path.dirname(file), specifier!.replace(/\.js$/, '.ts')));
      else packages.add(specifier!);
    }
  };
  walk(path.join(src, entry));
  return packages;
}

// Declarations mirror these imports: a driver's types reached from the main entry make a user
// without that optional peer fail tsc with skipLibCheck: false (TS2307).
describe('package entries', () => {
  it('the main entry reaches no optional peer; each driver entry reaches only its own', () => {
    const main = reachedPackages('index.ts');
    expect([...main].filter((name) => /^(ioredis|amqplib)/.test(name))).toEqual([]);
    expect(reachedPackages('redis.ts').has('amqplib')).toBe(false);
    expect(reachedPackages('rabbitmq.ts').has('ioredis')).toBe(false);
  });

  it('declares prom-client as what it is: a dependency (it comes with @noa/core), not an optional peer', () => {
    const manifest = (name: string) =>
      JSON.parse(readFileSync(fileURLToPath(new URL(`../../${name}/package.json`, import.meta.url)), 'utf8'));
    const queue = manifest('message-queue');
    expect(queue.peerDependencies?.['prom-client']).toBeUndefined();
    expect(queue.peerDependenciesMeta?.['prom-client']).toBeUndefined();
    expect(queue.dependencies['prom-client']).toBe(manifest('core').dependencies['prom-client']);
  });
});

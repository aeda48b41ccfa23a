import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { entryShapeProblems, optionalPeersByEntry } from '@noa/testkit/declarations';
import { describe, expect, it } from 'vitest';

const packageDir = fileURLToPath(new URL('..', import.meta.url));

// A driver's types reached from the main entry make a user without that optional peer fail tsc
// with skipLibCheck: false (TS2307): decision 010.
describe('package entries', () => {
  it('are listed alike in exports and publishConfig.exports', () => {
    expect(entryShapeProblems(packageDir)).toEqual([]);
  });

  it('the main entry reaches no optional peer; each driver entry reaches only its own', {
    timeout: 60_000,
  }, () => {
    expect(optionalPeersByEntry(packageDir)).toEqual({
      '.': [],
      './redis': ['ioredis'],
      // The provider's declarations name no amqplib type: a RabbitMQ user's tsc needs none.
      './rabbitmq': [],
    });
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

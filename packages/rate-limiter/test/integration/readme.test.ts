import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { format } from 'node:util';
import { isReachable, serviceUrl } from '@noa/testkit';
import { describe, expect, it } from 'vitest';

const packageDir = new URL('../../', import.meta.url);
const readme = readFileSync(new URL('README.md', packageDir), 'utf8');
const entry = new URL('src/index.ts', packageDir).pathname;
// Blocks are written under node_modules/ so that their imports (express, fastify, ioredis)
// resolve from this package, and neither git nor Biome sees them.
const scratch = new URL('node_modules/.readme/', packageDir);
mkdirSync(scratch, { recursive: true });

interface Block {
  needs: string | undefined;
  code: string;
  line: number;
}

function blocks(): Block[] {
  const found: Block[] = [];
  const pattern = /<!-- test(?:: (\w+))? -->\s*```ts\n([\s\S]*?)```/g;
  for (const match of readme.matchAll(pattern))
    found.push({ needs: match[1], code: match[2]!, line: readme.slice(0, match.index).split('\n').length });
  return found;
}

/** `console.log(...); // expected` lines: the expected output of each log call, in order. */
function expectedLogs(code: string): (string | undefined)[] {
  return code
    .split('\n')
    .filter((line) => line.includes('console.log('))
    .map((line) => {
      const comment = line.split('); // ')[1];
      return comment === undefined || comment.includes('…') ? undefined : comment.trim();
    });
}

const redisUp = await isReachable('redis');
if (!redisUp) console.log(`skipped: no Redis at ${serviceUrl('redis')} (README Redis example)`);

describe('README examples run as written', () => {
  const all = blocks();
  it('finds the examples', () => {
    expect(all.length).toBeGreaterThanOrEqual(4);
  });
  for (const [index, block] of all.entries()) {
    it.skipIf(block.needs === 'redis' && !redisUp)(`example at README.md line ${block.line}`, async () => {
      const file = new URL(`block-${index}.ts`, scratch);
      writeFileSync(file, block.code.replaceAll("'@noa/rate-limiter'", JSON.stringify(entry)));
      const logs: string[] = [];
      const original = console.log;
      console.log = (...args: unknown[]) => logs.push(format(...args));
      try {
        await import(`${file.href}?t=${Date.now()}`);
      } finally {
        console.log = original;
      }
      const expected = expectedLogs(block.code);
      expect(logs).toHaveLength(expected.length);
      expected.forEach((line, at) => {
        if (line !== undefined) expect(logs[at]).toBe(line);
      });
    });
  }
});

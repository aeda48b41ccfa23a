import path from 'node:path';
import {
  awayFromWindowEdge,
  formatLogs,
  isReachable,
  readmeBlocks,
  runReadmeBlock,
  serviceUrl,
} from '@noa/testkit';
import { describe, expect, it } from 'vitest';

const packageDir = path.resolve(import.meta.dirname, '../..');

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

describe('README and guide (docs/*.md) examples run as written', () => {
  const all = readmeBlocks(packageDir);
  it('finds the examples', () => {
    expect(all.length).toBeGreaterThanOrEqual(4);
  });
  for (const block of all) {
    it.skipIf(block.tag === 'redis' && !redisUp)(`example at ${block.file} line ${block.line}`, async () => {
      // The examples count in fixed windows of a minute (or an hour, a day) on the real clock, aligned
      // to it, and print what a later call sees (remaining 2, refused): they must not start within 3 s
      // of a minute's end. The README stays free of test plumbing.
      await awayFromWindowEdge(60_000, 3_000);
      const logs = formatLogs(await runReadmeBlock(packageDir, block.code));
      const expected = expectedLogs(block.code);
      expect(logs).toHaveLength(expected.length);
      expected.forEach((line, at) => {
        if (line !== undefined) expect(logs[at]).toBe(line);
      });
    });
  }
});

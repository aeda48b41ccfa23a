import path from 'node:path';
import { readmeBlocks, runReadmeBlock } from '@noa/testkit';
import { describe, expect, it } from 'vitest';

const packageDir = path.resolve(import.meta.dirname, '..');

/** What a block logged, one string per call (non-string arguments as JSON). */
async function runLogged(code: string): Promise<string[]> {
  const calls = await runReadmeBlock(packageDir, code);
  return calls.map((args) =>
    args.map((arg) => (typeof arg === 'string' ? arg : JSON.stringify(arg))).join(' '),
  );
}

describe('README examples (memory provider)', () => {
  const blocks = readmeBlocks(packageDir)
    .filter((block) => block.tag === undefined)
    .map((block) => block.code);

  it('has the examples', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(4);
  });

  it('quick start completes a job', async () => {
    expect(await runLogged(blocks[0]!)).toEqual(['completed']);
  });

  it('worker example dead-letters, keeps the error history and redrives', async () => {
    const logged = await runLogged(blocks[1]!);
    expect(JSON.parse(logged[0]!)).toHaveLength(2);
  });

  it('scheduler example fires the one-off and the interval job', async () => {
    await runLogged(blocks[2]!);
  });

  it('flow example sums the children results', async () => {
    expect(await runLogged(blocks[3]!)).toEqual(['14']);
  });

  it('lease example: the stalled run is aborted with LeaseLostError, the next run completes', async () => {
    expect(await runLogged(blocks[4]!)).toEqual(['NOA_MQ_LEASE_LOST expired', 'exported']);
  });

  it('health example: down until the backend answered, up while running, down once closed', async () => {
    expect(await runLogged(blocks[5]!)).toEqual(['down unknown', 'up up up', 'down']);
  });
});

import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { defaultConsecutiveFailures } from '@noa/core';
import { documentationFiles } from '@noa/testkit';
import { describe, expect, it } from 'vitest';
import { cacheOptionsSchema } from '../src/cache-options.js';

const packageDir = path.resolve(import.meta.dirname, '..');

/** The README's options table: option → its default cell (backticks kept). */
function readmeDefaults(): Map<string, string> {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('\n## Options\n'), readme.indexOf('\n## Errors\n'));
  const defaults = new Map<string, string>();
  for (const line of section.split('\n')) {
    const cells = line.split(/(?<!\\)\|/).map((cell) => cell.trim());
    const option = /^`([a-zA-Z0-9.]+)`/.exec(cells[1] ?? '')?.[1];
    if (option !== undefined && cells[3] !== undefined) defaults.set(option, cells[3]);
  }
  return defaults;
}

/** A default cell as a value: `'text'`, a number (`1,000`, `64 MiB`, `65536 (…)`), a boolean or a bare word. */
function defaultOf(cell: string): unknown {
  if (/^none\b/.test(cell)) return undefined;
  const quoted = /^`'(.*)'`$/.exec(cell);
  if (quoted) return quoted[1];
  const mib = /^(\d+) MiB$/.exec(cell);
  if (mib) return Number(mib[1]) * 1024 * 1024;
  const number = /^([\d,]+)(?: \(.*\))?$/.exec(cell);
  if (number) return Number(number[1]!.replaceAll(',', ''));
  if (cell === 'true' || cell === 'false') return cell === 'true';
  const word = /^`([a-z]+)`(?: \(.*\))?$/.exec(cell);
  if (word) return word[1];
  return cell;
}

describe("the README's options table", () => {
  const defaults = readmeDefaults();
  const parsed = cacheOptionsSchema.parse({}) as unknown as Record<string, unknown>;
  const at = (path: string) =>
    path
      .split('.')
      .reduce<unknown>((value, key) => (value as Record<string, unknown> | undefined)?.[key], parsed);

  it('lists every option of the schema', () => {
    const top = Object.keys(cacheOptionsSchema.shape).sort();
    const listed = new Set([...defaults.keys()].map((option) => option.split('.')[0]!));
    expect(top.filter((option) => !listed.has(option))).toEqual([]);
  });

  it("gives each plain option the schema's default", () => {
    const instances = new Set([
      'redis',
      'registry',
      'logger',
      'clock',
      'random',
      'edge',
      'breaker',
      'lock.enabled',
      // An object of defaults, each checked on its own row (`l1.policy`, …).
      'l1',
    ]);
    let checked = 0;
    for (const [option, cell] of defaults) {
      if (instances.has(option)) continue;
      expect({ option, value: defaultOf(cell) }).toEqual({ option, value: at(option) });
      checked += 1;
    }
    expect(checked).toBeGreaterThan(20);
  });

  it('states the breaker, lock and edge defaults the schema has', () => {
    expect(defaults.get('breaker')).toBe(
      'ratio 0.5 over 5 s, or 10 failed calls in a row; half-open after 1 s',
    );
    expect(at('breaker')).toMatchObject({
      failureRatio: 0.5,
      samplingDurationMs: 5_000,
      halfOpenAfterMs: 1_000,
    });
    // Unset, the run is core's default (set, it replaces the ratio).
    expect(at('breaker')).not.toHaveProperty('consecutiveFailures');
    expect(defaultConsecutiveFailures).toBe(10);
    expect(defaults.get('lock.enabled')).toBe('true / 10000 / 5000 / 100');
    expect(at('lock')).toEqual({ enabled: true, leaseMs: 10_000, timeoutMs: 5_000, pollMs: 100 });
    expect(defaults.get('edge')).toBe('none (`timeoutMs` 10000)');
    const edge = cacheOptionsSchema.parse({ edge: { purger: { purgeTags: async () => {} } } }).edge;
    expect(edge?.timeoutMs).toBe(10_000);
  });
});

describe('the README and its guides', () => {
  it('name only test and bench files that exist (each claim points at its proof)', () => {
    // The README and the guides under docs/ it links to, as one text: a claim moved to a guide
    // keeps its proof there.
    const readme = documentationFiles(packageDir)
      .map((file) => readFileSync(path.join(packageDir, file), 'utf8'))
      .join('\n');
    const named = new Set(
      [...readme.matchAll(/`((?:packages\/[a-z-]+\/)?(?:test|bench)\/[\w./-]+\.ts)/g)].map(
        (match) => match[1]!,
      ),
    );
    expect(named.size).toBeGreaterThan(50);
    const missing = [...named].filter(
      (file) =>
        !existsSync(
          new URL(file.startsWith('packages/') ? `../../../${file}` : `../${file}`, import.meta.url),
        ),
    );
    expect(missing).toEqual([]);
  });
});

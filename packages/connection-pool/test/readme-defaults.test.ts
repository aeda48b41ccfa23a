import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkHealthOptionsSchema, clusterOptionsSchema } from '../src/index.js';
import { redisPoolOptionsSchema } from '../src/redis.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

/** The README's options table (`createPgPool` / `createMysqlPool`): each option with its default cell. */
function optionsTable(): Map<string, string> {
  const start = readme.indexOf('| option ');
  const rows = readme.slice(start).split('\n').slice(2);
  const table = new Map<string, string>();
  for (const row of rows) {
    if (!row.startsWith('|')) break;
    const [, optionCell, , defaultCell] = row
      .replace(/\\\|/g, 'or')
      .split('|')
      .map((cell) => cell.trim());
    const names = [...optionCell!.matchAll(/`([^`]+)`/g)].map((match) => match[1]!);
    const defaults = defaultCell!.split(' / ');
    for (const [index, name] of names.entries())
      table.set(name, defaults[defaults.length === 1 ? 0 : index]!);
  }
  return table;
}

/** A default cell as a value: `none`/`off` are undefined, numbers and booleans as such. */
function defaultOf(cell: string): unknown {
  if (cell === 'none' || cell === 'off') return undefined;
  if (cell === 'true' || cell === 'false') return cell === 'true';
  if (cell === '`[]`') return [];
  if (/^\d+$/.test(cell)) return Number(cell);
  return cell.replace(/`/g, '');
}

describe('README defaults are the schemas’ defaults', () => {
  it('every row of the options table that has a default (createPgPool / createMysqlPool)', () => {
    const table = optionsTable();
    expect(table.size).toBeGreaterThan(25);
    const parsed = clusterOptionsSchema.parse({ primary: 'postgres://x' }) as Record<string, unknown>;
    const checked: string[] = [];
    for (const [option, cell] of table) {
      if (cell === 'required' || ['logger', 'clock', 'registry', 'failover'].includes(option)) continue;
      const path = option.split('.');
      const actual = path.reduce<unknown>((value, key) => (value as Record<string, unknown>)[key], parsed);
      expect(actual, option).toEqual(defaultOf(cell));
      checked.push(option);
    }
    expect(checked).toContain('pool.max');
    expect(checked).toContain('statementCacheSize');
    // logger / clock / registry: "silent / system / none", i.e. not set unless given.
    expect([parsed.logger, parsed.clock, parsed.registry, parsed.failover]).toEqual([
      undefined,
      undefined,
      undefined,
      undefined,
    ]);
  });

  it('createRedisPool: max 4, queryTimeoutMs and healthCheckIntervalMs off; checks: timeoutMs 500, maxAgeMs 1000', () => {
    const redis = redisPoolOptionsSchema.parse({ redis: 'redis://x' });
    expect(redis).toMatchObject({ max: 4, name: 'redis', connectTimeoutMs: 5_000, allowExitOnIdle: false });
    expect(redis.queryTimeoutMs).toBeUndefined();
    expect(redis.healthCheckIntervalMs).toBeUndefined();
    expect(checkHealthOptionsSchema.parse({})).toEqual({ timeoutMs: 500, maxAgeMs: 1_000 });
  });
});

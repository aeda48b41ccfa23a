import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The Lua scripts of the Redis provider: one per state transition, sharing `common.lua`. */
const redisScriptNames = [
  'add',
  'add-flow',
  'exchange',
  'release',
  'maintain',
  'get-job',
  'counts',
  'drain',
  'cancel',
  'redrive',
  'purge-dead',
] as const;

/** A script's name. */
export type RedisScriptName = (typeof redisScriptNames)[number];

/**
 * Where the `.lua` files are: next to this module first (src/ when run from source, dist/ once
 * the build's `scripts/copy-lua.mjs` has copied them), else the package's src/ (a dist built
 * without the copy step).
 */
function redisScriptDirectory(): string {
  const candidates = [
    fileURLToPath(new URL('./redis/', import.meta.url)),
    fileURLToPath(new URL('../../src/providers/redis/', import.meta.url)),
  ];
  const found = candidates.find((directory) => existsSync(`${directory}common.lua`));
  if (!found) throw new Error(`message-queue: Redis scripts not found in ${candidates.join(' or ')}`);
  return found;
}

let loaded: Record<RedisScriptName, string> | undefined;

/** Reads every script once (common.lua prepended); ioredis then runs them by EVALSHA. */
export function loadRedisScripts(): Record<RedisScriptName, string> {
  if (loaded) return loaded;
  const directory = redisScriptDirectory();
  const common = readFileSync(`${directory}common.lua`, 'utf8');
  const scripts = {} as Record<RedisScriptName, string>;
  for (const name of redisScriptNames) {
    scripts[name] = `${common}\n${readFileSync(`${directory}${name}.lua`, 'utf8')}`;
  }
  loaded = scripts;
  return scripts;
}

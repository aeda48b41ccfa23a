import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The Lua scripts of the Redis provider: one per state transition, sharing `common.lua`. */
export const redisScriptNames = [
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

function scriptDirectory(): string {
  // Next to this module in src/; a build that does not copy .lua files falls back to src/.
  const beside = fileURLToPath(new URL('./redis/', import.meta.url));
  if (existsSync(`${beside}common.lua`)) return beside;
  return fileURLToPath(new URL('../../src/providers/redis/', import.meta.url));
}

let loaded: Record<RedisScriptName, string> | undefined;

/** Reads every script once (common.lua prepended); ioredis then runs them by EVALSHA. */
export function loadRedisScripts(): Record<RedisScriptName, string> {
  if (loaded) return loaded;
  const directory = scriptDirectory();
  const common = readFileSync(`${directory}common.lua`, 'utf8');
  const scripts = {} as Record<RedisScriptName, string>;
  for (const name of redisScriptNames) {
    scripts[name] = `${common}\n${readFileSync(`${directory}${name}.lua`, 'utf8')}`;
  }
  loaded = scripts;
  return scripts;
}

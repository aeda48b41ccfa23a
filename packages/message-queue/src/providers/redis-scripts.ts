import { type LuaScript, loadLuaScripts } from './lua-scripts.js';

/** The Lua scripts of the Redis provider: one per state transition, sharing `common.lua`. */
const redisScriptNames = [
  'add',
  'add-flow',
  'exchange',
  'extend',
  'release',
  'maintain',
  'get-job',
  'counts',
  'drain',
  'cancel',
  'redrive',
  'purge-dead',
  'progress',
] as const;

/** A script's name. */
export type RedisScriptName = (typeof redisScriptNames)[number];

/** Reads every script of `redis/` once; ioredis then runs them by EVALSHA. */
export function loadRedisScripts(): Record<RedisScriptName, LuaScript> {
  return loadLuaScripts('redis', redisScriptNames, 'Redis scripts');
}

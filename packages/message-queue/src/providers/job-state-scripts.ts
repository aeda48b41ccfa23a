import { type LuaScript, loadLuaScripts } from './lua-scripts.js';

/** The Lua scripts of `RedisJobStateStore`: one per state transition, sharing `common.lua`. */
const jobStateScriptNames = [
  'add',
  'add-flow',
  'unclaim',
  'confirm',
  'exchange',
  'extend',
  'release',
  'maintain',
  'get-job',
  'counts',
  'drain',
  'progress',
  'cancel',
  'redrive',
  'purge-dead',
] as const;

/** A job-state script's name. */
export type JobStateScriptName = (typeof jobStateScriptNames)[number];

/** Reads every script of `rabbitmq-state/` once; they then run by EVALSHA. */
export function loadJobStateScripts(): Record<JobStateScriptName, LuaScript> {
  return loadLuaScripts('rabbitmq-state', jobStateScriptNames, 'job-state scripts');
}

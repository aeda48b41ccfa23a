import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The Lua scripts of `RedisJobStateStore`: one per state transition, sharing `common.lua`. */
const jobStateScriptNames = [
  'add',
  'add-flow',
  'unclaim',
  'confirm',
  'exchange',
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

/** Next to this module (src/, or dist/ once the build copied the `.lua` files), else the package's src/. */
function scriptDirectory(): string {
  const candidates = [
    fileURLToPath(new URL('./rabbitmq-state/', import.meta.url)),
    fileURLToPath(new URL('../../src/providers/rabbitmq-state/', import.meta.url)),
  ];
  const found = candidates.find((directory) => existsSync(`${directory}common.lua`));
  if (!found) throw new Error(`message-queue: job-state scripts not found in ${candidates.join(' or ')}`);
  return found;
}

let loaded: Record<JobStateScriptName, string> | undefined;

/** Reads every script once (common.lua prepended); they then run by EVALSHA. */
export function loadJobStateScripts(): Record<JobStateScriptName, string> {
  if (loaded) return loaded;
  const directory = scriptDirectory();
  const common = readFileSync(`${directory}common.lua`, 'utf8');
  const scripts = {} as Record<JobStateScriptName, string>;
  for (const name of jobStateScriptNames) {
    scripts[name] = `${common}\n${readFileSync(`${directory}${name}.lua`, 'utf8')}`;
  }
  loaded = scripts;
  return scripts;
}

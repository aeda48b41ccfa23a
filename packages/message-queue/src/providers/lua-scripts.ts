import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Cluster, Redis } from 'ioredis';

/** A Lua script (`shared.lua` and its folder's `common.lua` prepended) and its SHA-1, to run by EVALSHA. */
export interface LuaScript {
  readonly source: string;
  readonly sha: string;
}

/**
 * Where a folder of `.lua` files is: next to this module first (src/ when run from source,
 * dist/ once the build's `scripts/copy-lua.mjs` has copied them), else the package's src/ (a
 * dist built without the copy step).
 */
function scriptDirectory(folder: string, what: string): string {
  const candidates = [
    fileURLToPath(new URL(`./${folder}/`, import.meta.url)),
    fileURLToPath(new URL(`../../src/providers/${folder}/`, import.meta.url)),
  ];
  const found = candidates.find((directory) => existsSync(`${directory}common.lua`));
  if (!found) throw new Error(`message-queue: ${what} not found in ${candidates.join(' or ')}`);
  return found;
}

const loaded = new Map<string, Record<string, LuaScript>>();

/**
 * Reads the scripts of a folder under `src/providers/` once per process (each with `shared.lua`
 * and the folder's `common.lua` prepended) and hashes them for EVALSHA. `what` names them in the error thrown
 * when the folder is missing.
 */
export function loadLuaScripts<Name extends string>(
  folder: string,
  names: readonly Name[],
  what: string,
): Record<Name, LuaScript> {
  const cached = loaded.get(folder);
  if (cached) return cached as Record<Name, LuaScript>;
  const directory = scriptDirectory(folder, what);
  // shared.lua sits beside the folders (src/providers/ or dist/providers/): code both stores use.
  const common = `${readFileSync(`${directory}../shared.lua`, 'utf8')}\n${readFileSync(`${directory}common.lua`, 'utf8')}`;
  const scripts = {} as Record<Name, LuaScript>;
  for (const name of names) {
    const source = `${common}\n${readFileSync(`${directory}${name}.lua`, 'utf8')}`;
    scripts[name] = { source, sha: createHash('sha1').update(source).digest('hex') };
  }
  loaded.set(folder, scripts);
  return scripts;
}

function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.includes('NOSCRIPT');
}

/**
 * Runs a script by EVALSHA with its one declared key (the queue's meta key) and the queue's key
 * prefix as first argument; on NOSCRIPT (first use, or after a Redis restart) sends the source.
 */
export async function runLuaScript(
  redis: Redis | Cluster,
  script: LuaScript,
  meta: string,
  prefix: string,
  args: (string | number)[],
): Promise<unknown> {
  try {
    return await redis.evalsha(script.sha, 1, meta, prefix, ...args);
  } catch (error) {
    if (!isNoScript(error)) throw error;
    return redis.eval(script.source, 1, meta, prefix, ...args);
  }
}

import type { Redis } from 'ioredis';

/** One command's counters from `INFO commandstats` (0 for a command never called). */
export interface CommandStat {
  /** Calls Redis ran (`calls`). */
  calls: number;
  /** Calls refused before running (`rejected_calls`: OOM, ACL, wrong arity…). */
  rejected: number;
  /** Calls that ran and failed (`failed_calls`). */
  failed: number;
}

/**
 * `command`'s counters on `node` (a standalone server or one Cluster node), read from
 * `INFO commandstats`: how many PINGs a health check sent, how many SADDs an out-of-memory master
 * refused. `command` is Redis's lower-case name (`ping`, `sadd`, `evalsha`).
 */
export async function commandStat(node: Pick<Redis, 'info'>, command: string): Promise<CommandStat> {
  const info = await node.info('commandstats');
  const line = new RegExp(`^cmdstat_${command}:(.*)$`, 'm').exec(info)?.[1] ?? '';
  const field = (name: string) => Number(new RegExp(`(?:^|,)${name}=(\\d+)`).exec(line)?.[1] ?? 0);
  return { calls: field('calls'), rejected: field('rejected_calls'), failed: field('failed_calls') };
}

/** The port of the Cluster master serving `key` (`CLUSTER KEYSLOT`, then `CLUSTER SLOTS`). */
export async function clusterMasterPortOf(node: Pick<Redis, 'cluster'>, key: string): Promise<number> {
  const slot = Number(await node.cluster('KEYSLOT', key));
  const ranges = await node.cluster('SLOTS');
  const master = ranges.find(([from, to]) => slot >= from && slot <= to)?.[2];
  if (!master) throw new Error(`no master serves slot ${slot}`);
  return master[1];
}

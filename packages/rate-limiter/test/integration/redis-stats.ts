import type { Redis } from 'ioredis';

/** Calls per command (`function|load`, `fcall`, …) since the server's stats were last reset. */
export async function commandCalls(admin: Redis): Promise<Record<string, number>> {
  const info = await admin.info('commandstats');
  const calls: Record<string, number> = {};
  for (const match of info.matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)) calls[match[1]!] = Number(match[2]);
  return calls;
}

/**
 * Check calls (FCALL, EVALSHA, EVAL) the servers received since their stats were last reset
 * (private servers: nobody else's commands are counted).
 */
export async function scriptCalls(...admins: Redis[]): Promise<number> {
  let total = 0;
  for (const admin of admins) {
    const calls = await commandCalls(admin);
    total += (calls.fcall ?? 0) + (calls.evalsha ?? 0) + (calls.eval ?? 0);
  }
  return total;
}

/**
 * Starts moving Cluster `slot` from `source` to `target` and moves its keys (the slot is then
 * migrating: the source answers ASK for them); returns the keys moved. Hand the slot over with
 * `CLUSTER SETSLOT <slot> NODE <target id>` on every master.
 */
export async function migrateSlotKeys(source: Redis, target: Redis, slot: number): Promise<string[]> {
  const sourceId = (await source.cluster('MYID')) as string;
  const targetId = (await target.cluster('MYID')) as string;
  await target.cluster('SETSLOT', slot, 'IMPORTING', sourceId);
  await source.cluster('SETSLOT', slot, 'MIGRATING', targetId);
  const inSlot = (await source.cluster('GETKEYSINSLOT', slot, 100)) as string[];
  await source.call('MIGRATE', '127.0.0.1', String(target.options.port), '', '0', '5000', 'KEYS', ...inSlot);
  return inSlot;
}

/**
 * Wraps `store.recordNamespace` so that the returned promise settles once the records a limiter
 * made with `store` sent at its start have landed: they are script calls of their own, which a
 * test counting the checks' script calls must not see after its RESETSTAT. Call before creating
 * the limiter, await the result after.
 */
export function recordsOf(store: {
  recordNamespace: (...args: never[]) => Promise<void>;
}): () => Promise<void> {
  const records: Promise<void>[] = [];
  const record = store.recordNamespace.bind(store);
  store.recordNamespace = (...args) => {
    const recorded = record(...args);
    records.push(recorded);
    return recorded;
  };
  return async () => {
    await Promise.all(records);
  };
}

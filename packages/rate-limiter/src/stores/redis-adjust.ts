import { TimeoutError } from '@noa/core';
import type { Cluster, Redis } from 'ioredis';
import type { AutoBlockPolicy } from '../auto-block.js';
import { RateLimitStoreError } from '../errors.js';
import { capacityOf, type LimitPolicy } from '../policy.js';
import {
  algorithmCodes,
  assembleScript,
  decisionFromReply,
  fifthPolicyValue,
  replyValuesPerLimit,
} from './lua-script.js';
import type { RedisClockOffset } from './redis-clock.js';
import type { ConsumeOptions, ConsumeOutcome, StoreAdjustment } from './store.js';
import { type ClusterCommands, stampedExpiry } from './unsent-command.js';

const adjust = assembleScript('adjust.lua');

/**
 * The adjust script: the check script's prelude and algorithm files (for the cost-0 decision it
 * returns) followed by `adjust.lua`, read from `../lua/` like the check script.
 */
export const adjustScript = adjust.source;

/** SHA1 of {@link adjustScript}, for EVALSHA. */
export const adjustScriptSha = adjust.sha;

/**
 * Applies `adjustment` to the state of `hashKey` (the hash of the store key `key`) in one script call (EVALSHA, EVAL on NOSCRIPT),
 * timed by Redis `TIME`. Every key the script touches shares `hashKey`'s hash tag, so it runs on
 * a Cluster too. With `options.deadlineMs` the call carries its deadline in Redis time (from
 * `clockOf()`, the offset of the server holding the key, as checks do): one that reaches Redis
 * later changes nothing and rejects with core's `TimeoutError`. On a Cluster, `commands` sends it
 * (so that a refusal before any server got it is told apart: `neverSent`), and a MOVED or ASK that
 * ioredis follows carries the expiry in the clock of the node it names (`clockOfNode`, from the
 * address in the reply), whose clock then reads the reply.
 */
export async function adjustOnRedis(
  client: Redis | Cluster,
  key: string,
  hashKey: string,
  limits: readonly LimitPolicy[],
  adjustment: StoreAdjustment,
  block: AutoBlockPolicy | undefined,
  clockOf: () => RedisClockOffset | undefined,
  options?: ConsumeOptions,
  commands?: ClusterCommands,
  clockOfNode?: (address: string) => RedisClockOffset,
): Promise<ConsumeOutcome> {
  const amount =
    adjustment.operation === 'refund' || adjustment.operation === 'penalize'
      ? adjustment.points
      : adjustment.operation === 'block'
        ? adjustment.durationMs
        : 0;
  const deadlineMs = options?.deadlineMs;
  const giveUpAtMs =
    deadlineMs !== undefined && Number.isFinite(deadlineMs) && deadlineMs > 0
      ? performance.now() + deadlineMs
      : undefined;
  const args: (string | number)[] = [
    giveUpAtMs === undefined ? 0 : (clockOf()?.expiryFor(giveUpAtMs) ?? 0),
    adjustment.operation,
    amount,
    block === undefined ? 0 : 1,
    block?.forgetAfterMs ?? 0,
    limits.length,
  ];
  for (const policy of limits)
    args.push(
      algorithmCodes[policy.algorithm],
      policy.limit,
      policy.windowMs,
      capacityOf(policy),
      fifthPolicyValue(policy, key),
    );
  // The same sorted-set names as the check script's (one per limit), read by sliding logs only.
  const keys = [hashKey, ...limits.map((_, index) => `${hashKey}:log${index + 1}`)];
  const expiry = args[0] as number;
  // The clock of the node a redirection sent the last send to (undefined: the key's server's).
  let ranOn: RedisClockOffset | undefined;
  const redirected =
    clockOfNode === undefined
      ? undefined
      : (node: string) => {
          ranOn = clockOfNode(node);
          return stampedExpiry(expiry, ranOn, giveUpAtMs);
        };
  let sentAt = performance.now();
  let reply: unknown;
  try {
    reply = await (commands?.send('evalsha', adjustScriptSha, keys, args, redirected) ??
      client.evalsha(adjustScriptSha, keys.length, ...keys, ...args));
  } catch (error) {
    if (!String((error as Error)?.message).startsWith('NOSCRIPT')) throw error;
    // A MOVED may have sent the EVALSHA to another master, whose NOSCRIPT this is: the EVAL goes
    // where the slot map now says, stamped in that master's clock (not the first one's).
    args[0] = stampedExpiry(expiry, clockOf(), giveUpAtMs);
    sentAt = performance.now();
    ranOn = undefined;
    reply = await (commands?.send('eval', adjustScript, keys, args, redirected) ??
      client.eval(adjustScript, keys.length, ...keys, ...args));
  }
  const receivedAt = performance.now();
  const values = reply as number[];
  if (!Array.isArray(reply) || typeof values[0] !== 'number')
    throw new RateLimitStoreError('unexpected reply from the rate-limit adjust script', {
      details: { reply },
    });
  const clock = ranOn ?? clockOf();
  if (values[1] !== 0) {
    clock?.observe(sentAt, values[0], receivedAt);
    return parseAdjustReply(values, limits);
  }
  clock?.observeExpired(sentAt, values[0], receivedAt, giveUpAtMs ?? Number.NEGATIVE_INFINITY);
  throw new TimeoutError(
    `rate-limit ${adjustment.operation} on redis (skipped: it reached Redis after its deadline)`,
    deadlineMs ?? 0,
  );
}

/** The reply: Redis's now, 1 (it ran), blockedMs, then {@link replyValuesPerLimit} values per limit. */
function parseAdjustReply(values: number[], limits: readonly LimitPolicy[]): ConsumeOutcome {
  if (values.length !== 3 + limits.length * replyValuesPerLimit)
    throw new RateLimitStoreError('unexpected reply from the rate-limit adjust script', {
      details: { reply: values },
    });
  const decisions = limits.map((policy, index) =>
    decisionFromReply(policy, values, 3 + index * replyValuesPerLimit),
  );
  return { decisions, blockedMs: values[2]! };
}

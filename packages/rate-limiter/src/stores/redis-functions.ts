import type { Logger } from '@noa/core';
import type { Cluster, Redis } from 'ioredis';
import { clusterSlot, keyPrefixOf } from './cluster-slot.js';
import { checkProgram } from './lua-script.js';

/** The error by which a server says it has no such function (not loaded, flushed, restarted). */
export const functionNotFound = 'ERR Function not found';

/**
 * Errors by which a server refuses functions for good: Redis < 7 (or a server without them)
 * knows no FCALL or FUNCTION, an ACL forbids them. Checks then run as scripts.
 */
export function refusesFunctions(message: string): boolean {
  return /unknown command|NOPERM.*\b(fcall|function)\b/i.test(message);
}

/** The error by which a server out of memory refuses a command (a function before it runs). */
export function outOfMemory(message: string): boolean {
  return message.startsWith('OOM ');
}

/**
 * The check program as a Redis function library on the servers of one `RedisStore`'s client:
 * whether checks still run as functions, and loading the library where a call needs it.
 */
export class CheckFunctionLibrary {
  readonly #client: Redis | Cluster;
  readonly #logger: Logger;
  #enabled: boolean;
  /** How long after a refusal functions are tried again (ms; 0: never). */
  readonly #retryMs: number;
  /** When checks try functions again (`Date.now()` ms), while they run as scripts. */
  #retryAt: number | undefined;
  /** A retry's probe (one FCALL) is in flight: other calls keep running as scripts. */
  #probing = false;
  /** Refusals so far: the first is logged at info level, later ones (retries) at debug. */
  #refusals = 0;
  /**
   * `FUNCTION LOAD`s in progress, per server: concurrent calls to one server share one. Each
   * settles with the load's error (`undefined`: loaded).
   */
  readonly #loading = new Map<Redis | Cluster, Promise<string | undefined>>();

  constructor(client: Redis | Cluster, logger: Logger, enabled: boolean, retryMs = 0) {
    this.#client = client;
    this.#logger = logger;
    this.#enabled = enabled;
    this.#retryMs = retryMs;
  }

  /**
   * Checks run as a Redis function (FCALL) while true; as scripts (EVALSHA) once a server
   * refused functions, until a retry's probe (see {@link probe}) finds them allowed again.
   */
  get enabled(): boolean {
    return this.#enabled;
  }

  /**
   * While checks run as scripts: true for the one call that tries FCALL again once `retryMs`
   * have passed (the probe), false for every other call, so that a server that still refuses
   * costs one extra round trip per retry, not one per call in flight. The probe's outcome is
   * reported by {@link resume} (FCALL got through), {@link stop} (refused again) or
   * {@link release} (unknown). Reads the clock only while a retry is pending.
   */
  probe(): boolean {
    if (this.#enabled || this.#retryAt === undefined || Date.now() < this.#retryAt) return false;
    this.#retryAt = undefined;
    this.#probing = true;
    this.#logger.debug('RedisStore: trying Redis functions again', { component: 'rate-limiter' });
    return true;
  }

  /** The probe's FCALL got past the server's checks of the command: functions are back for all. */
  resume(): void {
    if (!this.#probing) return;
    this.#probing = false;
    this.#enabled = true;
  }

  /**
   * The probe failed without telling whether the server allows functions (a lost connection, a
   * timeout): the next call probes again.
   */
  release(): void {
    if (!this.#probing) return;
    this.#probing = false;
    this.#retryAt = Date.now();
  }

  /**
   * `FUNCTION LOAD REPLACE` of the check library on the server of `hashKey` (a Cluster master,
   * found by the key's slot; every master when the slot map does not know it yet, or when
   * `everywhere`). Only that server as a rule: a master that is down or paused must not hold up
   * calls to the others. Concurrent callers of one server share one load; a failed load is left
   * to the next call, which asks again. Settles with a load error when every server asked failed
   * (`undefined` when one loaded it).
   */
  async load(hashKey: string, everywhere: boolean): Promise<string | undefined> {
    const isCluster = (this.#client as Cluster).isCluster === true;
    const targets =
      everywhere && isCluster ? (this.#client as Cluster).nodes('master') : this.#serversOf(hashKey);
    const errors = await Promise.all(
      targets.map((server) => {
        let loading = this.#loading.get(server);
        if (loading === undefined) {
          loading = server
            .call('FUNCTION', 'LOAD', 'REPLACE', checkProgram.library)
            .then(
              () => undefined,
              (error: unknown) => {
                const message = String((error as Error)?.message);
                if (refusesFunctions(message)) this.stop(message);
                return message;
              },
            )
            .finally(() => this.#loading.delete(server));
          this.#loading.set(server, loading);
        }
        return loading;
      }),
    );
    return errors.every((error) => error !== undefined) ? errors[0] : undefined;
  }

  /**
   * The server refused functions (or a retry's probe): checks run as scripts until `retryMs` from
   * now (logged at info level the first time, at debug level after a retry).
   */
  stop(reason: string): void {
    if (!this.#enabled && !this.#probing) return;
    this.#enabled = false;
    this.#probing = false;
    if (this.#retryMs > 0) this.#retryAt = Date.now() + this.#retryMs;
    this.#refusals += 1;
    const log = this.#refusals === 1 ? this.#logger.info : this.#logger.debug;
    log.call(this.#logger, 'RedisStore: Redis functions are not available; checks run as scripts (EVALSHA)', {
      component: 'rate-limiter',
      reason,
      retryInMs: this.#retryMs > 0 ? this.#retryMs : undefined,
    });
  }

  /** The server(s) `hashKey` lives on: the client itself, or the Cluster master of its slot. */
  #serversOf(hashKey: string): (Redis | Cluster)[] {
    const client = this.#client;
    if ((client as Cluster).isCluster !== true) return [client];
    const cluster = client as Cluster;
    const masters = cluster.nodes('master');
    // ioredis routes the call by the key with its keyPrefix in front (a tag there decides).
    const node = cluster.slots[clusterSlot(keyPrefixOf(cluster) + hashKey)]?.[0];
    const master = masters.find((server) => `${server.options.host}:${server.options.port}` === node);
    return master === undefined ? masters : [master];
  }
}

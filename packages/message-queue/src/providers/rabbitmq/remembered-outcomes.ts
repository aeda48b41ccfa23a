import { createHash } from 'node:crypto';
import type { Settlement } from '../../provider.js';
import type { Delivery } from './deliveries.js';

/** How many outcomes are kept at most (the oldest goes first: its redelivery then runs again). */
export const maxRememberedOutcomes = 1_000;

/**
 * How long an outcome is kept for its redelivery: 60 s, or ten reconnect delays when
 * `maxReconnectDelayMs` is longer than 6 s. The broker requeues the message when the channel
 * closes and pushes it again once this process has reconnected and consumes again.
 */
export function rememberOutcomesMs(maxReconnectDelayMs: number): number {
  return Math.max(60_000, 10 * maxReconnectDelayMs);
}

/**
 * The outcome of a try that finished after its channel closed (RabbitMQ without a state store),
 * kept until the job's redelivery comes back to this process.
 */
export interface RememberedOutcome {
  readonly queue: string;
  /** The settlement as the worker sent it: the same object comes back with its later exchanges. */
  readonly settlement: Settlement;
  /** The queue and the message's bytes, hashed: a redelivery carries the very same bytes. */
  readonly fingerprint: string;
  readonly expiresAt: number;
  /** The worker's clock minus this process's when it was kept (a retry is timed by the worker's). */
  readonly clockOffsetMs: number;
  /**
   * `waiting`: no redelivery yet. `settling`: a redelivery came and the failed try's retry (or
   * dead letter) is being published. `settled`: the redelivery was settled (acknowledged).
   */
  state: 'waiting' | 'settling' | 'settled';
  /** A failed try whose retry was over the broker's limit: dead-lettered instead. */
  deadLettered: boolean;
  /** The latest redelivery, until it is acknowledged. */
  delivery?: Delivery;
}

/**
 * Outcomes of tries whose deliveries were gone when they finished (the broker closed the channel,
 * e.g. for its `consumer_timeout`, or the connection dropped), so that the job's redelivery to
 * this process is settled with that outcome instead of running the job again. Bounded by count
 * ({@link maxRememberedOutcomes}) and by age (`rememberMs`); an outcome forgotten before its
 * redelivery came means the job runs again (at-least-once).
 */
export class RememberedOutcomes {
  /** By fingerprint; insertion order is expiry order (one fixed age). */
  readonly #byMessage = new Map<string, RememberedOutcome>();
  /** By queue and job id. */
  readonly #byJob = new Map<string, RememberedOutcome>();
  readonly #rememberMs: number;
  readonly #maxEntries: number;
  readonly #now: () => number;

  constructor(rememberMs: number, maxEntries = maxRememberedOutcomes, now: () => number = Date.now) {
    this.#rememberMs = rememberMs;
    this.#maxEntries = maxEntries;
    this.#now = now;
  }

  /** How many outcomes are kept (expired ones included until the next call sweeps them). */
  get size(): number {
    return this.#byMessage.size;
  }

  /** Keeps the outcome of a try of job `id` whose message had these bytes. */
  remember(
    queue: string,
    id: string,
    content: Buffer,
    settlement: Settlement,
    clockOffsetMs: number,
  ): RememberedOutcome {
    this.#sweep();
    const fingerprint = fingerprintOf(queue, content);
    const before = this.#byMessage.get(fingerprint) ?? this.#byJob.get(jobKey(queue, id));
    if (before) this.forget(before);
    while (this.#byMessage.size >= this.#maxEntries) {
      this.forget(this.#byMessage.values().next().value!);
    }
    const outcome: RememberedOutcome = {
      queue,
      settlement,
      fingerprint,
      expiresAt: this.#now() + this.#rememberMs,
      clockOffsetMs,
      state: 'waiting',
      deadLettered: false,
    };
    this.#byMessage.set(fingerprint, outcome);
    this.#byJob.set(jobKey(queue, id), outcome);
    return outcome;
  }

  /** The kept outcome that is this very settlement (the worker sending it again), if any. */
  sentAgain(queue: string, settlement: Settlement): RememberedOutcome | undefined {
    this.#sweep();
    const outcome = this.#byJob.get(jobKey(queue, settlement.record.id));
    return outcome?.settlement === settlement ? outcome : undefined;
  }

  /** The kept outcome whose message a redelivery with these bytes is, if any. */
  match(queue: string, content: Buffer): RememberedOutcome | undefined {
    if (this.#byMessage.size === 0) return undefined;
    this.#sweep();
    return this.#byMessage.get(fingerprintOf(queue, content));
  }

  forget(outcome: RememberedOutcome): void {
    if (this.#byMessage.get(outcome.fingerprint) === outcome) this.#byMessage.delete(outcome.fingerprint);
    const key = jobKey(outcome.queue, outcome.settlement.record.id);
    if (this.#byJob.get(key) === outcome) this.#byJob.delete(key);
  }

  #sweep(): void {
    const now = this.#now();
    for (const outcome of this.#byMessage.values()) {
      if (outcome.expiresAt > now) return;
      this.forget(outcome);
    }
  }
}

function fingerprintOf(queue: string, content: Buffer): string {
  return createHash('sha256').update(queue).update('\u0000').update(content).digest('base64');
}

function jobKey(queue: string, id: string): string {
  return `${queue}\u0000${id}`;
}

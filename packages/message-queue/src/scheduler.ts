import {
  ClosedError,
  ConfigError,
  childLogger,
  type Logger,
  maxTimerMs,
  parseOptions,
  silentLogger,
  withDeadline,
} from '@noa/core';
import { z } from 'zod';
import { maxDelayMs } from './job-options.js';
import type { NewJob, Queue } from './queue.js';
import { nextFireTimes, nextIntervalTime, tickJobId } from './schedule.js';

/**
 * A tick's job is kept on completion (then trimmed by the queue's retention): its id is what
 * makes another instance's add of the same tick a no-op, and an instance that adds it after the
 * job ran (a slower link, a lagging clock) would otherwise run the tick again.
 */
const singleTick = { removeOnComplete: false } as const;

/** Options of {@link Scheduler}. */
export const schedulerOptionsSchema = z
  .object({
    logger: z.custom<Logger>((value) => typeof value === 'object' && value !== null).default(silentLogger),
    /**
     * Whether the schedules' timers keep the process alive (default true), as `setInterval`
     * does: a scheduler with schedules is work the process stays up for, even when nothing else
     * (a Redis connection) holds it, as with the memory provider. `close()` (or cancelling every
     * schedule) releases it. `false`: the timers are `unref()`ed and the process exits when
     * nothing else holds it, ticks left unfired.
     */
    keepAlive: z.boolean().default(true),
    /**
     * How long `close()` waits for tick adds under way (default 5 000 ms): a tick that fired just
     * before `close()` is stored before the caller closes the provider. Past it `close()`
     * resolves with a warning naming the ticks not confirmed (a backend that does not answer).
     */
    closeTimeoutMs: z.number().int().positive().max(maxTimerMs).default(5_000),
  })
  .strict();

/** Options of {@link Scheduler}. */
export type SchedulerOptions = z.input<typeof schedulerOptionsSchema>;

interface Schedule<Data> {
  name: string;
  job: NewJob<Data>;
  next: (afterMs: number) => number | undefined;
  timer?: NodeJS.Timeout;
}

/**
 * Adds jobs on a cron pattern, a fixed interval or once at a time. Run it in as many processes
 * as you like: each tick is enqueued with the job id `schedule:<name>:<fireTime>`, so the
 * queue's jobId dedupe lets exactly one instance's add through and the tick runs once.
 */
export class Scheduler<Data = unknown> {
  readonly #queue: Queue<Data>;
  readonly #logger: Logger;
  readonly #keepAlive: boolean;
  readonly #schedules = new Map<string, Schedule<Data>>();
  readonly #closeTimeoutMs: number;
  /** Tick adds not answered yet, by tick job id: `close()` waits for them. */
  readonly #adding = new Map<string, Promise<void>>();
  #closed = false;

  constructor(queue: Queue<Data>, options: SchedulerOptions = {}) {
    const parsed = parseOptions('Scheduler', schedulerOptionsSchema, options);
    this.#queue = queue;
    this.#keepAlive = parsed.keepAlive;
    this.#closeTimeoutMs = parsed.closeTimeoutMs;
    this.#logger = childLogger(parsed.logger, { component: 'message-queue-scheduler', queue: queue.name });
  }

  /**
   * Fires `job` on a cron pattern (croner syntax; a 6th leading field means seconds). A pattern
   * croner refuses or one with no next run (`0 0 30 2 *`) throws ConfigError on `pattern`.
   */
  cron(name: string, pattern: string, job: NewJob<Data>, options: { timezone?: string } = {}): void {
    // croner checks the pattern when built and the timezone when it computes a time.
    checkName(name);
    let first: number[];
    try {
      first = nextFireTimes(pattern, Date.now(), 1);
    } catch (error) {
      throw scheduleError('pattern', error);
    }
    // A valid pattern naming no real date (Feb 30) has no next run: croner gives up finding one.
    if (first.length === 0) {
      throw new ConfigError('Scheduler', [{ path: 'pattern', message: `'${pattern}' never fires` }]);
    }
    if (options.timezone !== undefined) {
      try {
        nextFireTimes(pattern, Date.now(), 1, options.timezone);
      } catch (error) {
        throw scheduleError('timezone', error);
      }
    }
    this.#define({ name, job, next: (after) => nextFireTimes(pattern, after, 1, options.timezone)[0] });
  }

  /**
   * Fires `job` every `everyMs` (at most `maxDelayMs`, else ConfigError), aligned to multiples of
   * `everyMs` since the epoch.
   */
  every(name: string, everyMs: number, job: NewJob<Data>): void {
    checkName(name);
    if (!Number.isInteger(everyMs) || everyMs <= 0 || everyMs > maxDelayMs) {
      throw new ConfigError('Scheduler', [
        { path: 'everyMs', message: `must be a positive integer at most maxDelayMs (${maxDelayMs})` },
      ]);
    }
    this.#define({ name, job, next: (after) => nextIntervalTime(everyMs, after) });
  }

  /**
   * Adds `job` once, delayed until `atMs` (epoch ms), with a dedupe id derived from name and
   * time, so several instances calling this add it once. Returns the job id.
   */
  async once(name: string, atMs: number, job: NewJob<Data>): Promise<string> {
    checkName(name);
    const delay = Math.max(0, atMs - this.#queue.clock.now());
    if (!Number.isFinite(atMs) || delay > maxDelayMs) {
      throw new ConfigError('Scheduler', [
        { path: 'atMs', message: `must be a time (epoch ms) at most maxDelayMs (${maxDelayMs}) from now` },
      ]);
    }
    const jobId = tickJobId(name, atMs);
    await this.#queue.add(job.name, job.data, { ...job.options, ...singleTick, jobId, delay });
    return jobId;
  }

  /** Stops a schedule in this instance. Returns false if there was none by that name. */
  cancel(name: string): boolean {
    const schedule = this.#schedules.get(name);
    if (!schedule) return false;
    clearTimeout(schedule.timer);
    this.#schedules.delete(name);
    return true;
  }

  /** Names of the active schedules. */
  get names(): string[] {
    return [...this.#schedules.keys()];
  }

  #define(schedule: Schedule<Data>): void {
    if (this.#closed) throw new ClosedError('Scheduler');
    // A bad job (an unknown key, bad options, a payload the queue's schema refuses) would fail
    // every tick's add, seen only in a log line: refuse it now.
    this.#queue.validate(schedule.job);
    this.cancel(schedule.name);
    this.#schedules.set(schedule.name, schedule);
    this.#arm(schedule, Date.now());
  }

  #arm(schedule: Schedule<Data>, afterMs: number): void {
    const fireAt = schedule.next(afterMs);
    if (fireAt === undefined || this.#schedules.get(schedule.name) !== schedule) return;
    this.#waitFor(schedule, fireAt);
  }

  /**
   * Sleeps until the wall clock reaches `fireAt`. Timers run on a monotonic clock and Node fires
   * a delay past ~24.8 days at once, so a timer that ends early (a far tick, the wall clock
   * stepped back) waits again rather than firing a tick before its time.
   */
  #waitFor(schedule: Schedule<Data>, fireAt: number): void {
    const delayMs = Math.min(maxTimerMs, Math.max(0, fireAt - Date.now()));
    schedule.timer = setTimeout(() => {
      if (Date.now() < fireAt) this.#waitFor(schedule, fireAt);
      else void this.#fire(schedule, fireAt);
    }, delayMs);
    if (!this.#keepAlive) schedule.timer.unref();
  }

  async #fire(schedule: Schedule<Data>, fireAt: number): Promise<void> {
    if (this.#schedules.get(schedule.name) !== schedule) return;
    // Re-arm first so a slow add cannot delay the next tick. From now, not from `fireAt`: ticks
    // missed while the wall clock jumped ahead or the process was suspended are skipped, not
    // added back to back.
    this.#arm(schedule, Math.max(fireAt, Date.now()));
    const jobId = tickJobId(schedule.name, fireAt);
    const adding = this.#queue
      .add(schedule.job.name, schedule.job.data, { ...schedule.job.options, ...singleTick, jobId })
      .then(
        () => undefined,
        (error: unknown) => {
          this.#logger.warn('scheduled add failed', {
            schedule: schedule.name,
            fireAt,
            error: error instanceof Error ? error.message : String(error),
          });
        },
      )
      .finally(() => this.#adding.delete(jobId));
    this.#adding.set(jobId, adding);
    await adding;
  }

  /**
   * Stops every schedule and waits (up to `closeTimeoutMs`) for the adds of ticks that already
   * fired, so closing the queue's provider next loses none of them.
   */
  async close(): Promise<void> {
    this.#closed = true;
    for (const name of [...this.#schedules.keys()]) this.cancel(name);
    if (this.#adding.size === 0) return;
    try {
      await withDeadline(
        Promise.all(this.#adding.values()),
        this.#closeTimeoutMs,
        'scheduler close: tick adds',
      );
    } catch {
      this.#logger.warn('scheduler closed with tick adds unconfirmed (the backend did not answer)', {
        jobIds: [...this.#adding.keys()],
      });
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** A ConfigError naming a schedule's bad field, with croner's explanation. */
function scheduleError(field: 'pattern' | 'timezone', cause: unknown): ConfigError {
  const message = cause instanceof Error ? cause.message : String(cause);
  return new ConfigError('Scheduler', [{ path: field, message }]);
}

/** A schedule's name is part of each tick's job id: an empty one is refused. */
function checkName(name: string): void {
  if (typeof name !== 'string' || name.length === 0) {
    throw new ConfigError('Scheduler', [{ path: 'name', message: 'must be a non-empty string' }]);
  }
}

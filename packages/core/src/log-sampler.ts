import { z } from 'zod';
import { type Clock, systemClock } from './clock.js';
import { parseOptions } from './errors.js';
import type { Logger } from './logger.js';

/** Options of {@link LogSampler}. */
export const logSamplerOptionsSchema = z
  .object({
    /** At most one line per this many ms goes out; the others are counted. */
    intervalMs: z.number().int().positive().default(1_000),
    /** Time source. Default: `systemClock`. */
    clock: z
      .custom<Clock>((value) => typeof (value as Clock)?.now === 'function', 'must have now()')
      .optional(),
  })
  .strict();

/** Options of {@link LogSampler} as written by users. */
export type LogSamplerOptions = z.input<typeof logSamplerOptionsSchema>;

/**
 * Lets one log line through per `intervalMs` and holds back the others, counting them: the next
 * line written carries `suppressed`, the number held back since the one before. For the lines a
 * failing backend would otherwise write once per call: a Redis killed under 700 requests a second
 * made a rate limiter write 1,458 warnings in 2 s. Use one sampler per kind of line, so that a
 * frequent line does not hold back a rare one.
 */
export class LogSampler {
  readonly #intervalMs: number;
  readonly #clock: Clock;
  #lastAt = Number.NEGATIVE_INFINITY;
  #suppressed = 0;

  constructor(options: LogSamplerOptions = {}) {
    const parsed = parseOptions('LogSampler', logSamplerOptionsSchema, options);
    this.#intervalMs = parsed.intervalMs;
    this.#clock = parsed.clock ?? systemClock;
  }

  /** Lines held back since the last one written. */
  get suppressed(): number {
    return this.#suppressed;
  }

  /**
   * Writes `message` with `logger[level]`, adding `suppressed` to `fields` when lines were held
   * back, unless a line went out less than `intervalMs` ago: then counts it. True when written.
   */
  log(logger: Logger, level: keyof Logger, message: string, fields?: Record<string, unknown>): boolean {
    const now = this.#clock.now();
    if (now - this.#lastAt < this.#intervalMs) {
      this.#suppressed += 1;
      return false;
    }
    this.#lastAt = now;
    const suppressed = this.#suppressed;
    this.#suppressed = 0;
    logger[level](message, suppressed === 0 ? fields : { ...fields, suppressed });
    return true;
  }

  /**
   * Starts afresh (the episode the lines were about is over, e.g. the backend is back): the next
   * line goes out at once. Returns how many lines were held back since the last one written, for
   * the line that closes the episode.
   */
  reset(): number {
    const suppressed = this.#suppressed;
    this.#suppressed = 0;
    this.#lastAt = Number.NEGATIVE_INFINITY;
    return suppressed;
  }
}

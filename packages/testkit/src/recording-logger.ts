/** The levels of @noa/core's `Logger`. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** One line a {@link RecordingLogger} was given. */
export interface LogEntry {
  level: LogLevel;
  message: string;
  /** The fields as logged; `{}` when the line had none. */
  fields: Record<string, unknown>;
}

/**
 * A logger that keeps every line, for tests that assert what a library logged. Its four methods
 * have the shape of @noa/core's `Logger` (typed here, not imported: core's own tests use the test
 * kit, so the kit does not depend on core), so it is passed as the `logger` option as it is. The
 * methods do not use `this`: a copy made by an options parser still records into `entries`.
 */
export interface RecordingLogger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  /** Every line, in the order logged (the live array: it grows as the code under test logs). */
  readonly entries: LogEntry[];
  /** The lines at any of `levels` (every line when none is named), as a new array. */
  entriesAt(...levels: LogLevel[]): LogEntry[];
  /** The messages of the lines at any of `levels` (every line when none is named). */
  messages(...levels: LogLevel[]): string[];
  /**
   * The lines at any of `levels` as `message {"field":value,…}` (the fields as JSON, `{}` when
   * none): one string to search for a word that may be in the message or in a field.
   */
  lines(...levels: LogLevel[]): string[];
}

/**
 * A new {@link RecordingLogger}, empty.
 *
 * ```ts
 * const logger = recordingLogger();
 * const cache = new Cache({ redis, logger });
 * // …
 * expect(logger.messages('warn')).toContain('redis circuit breaker open');
 * ```
 */
export function recordingLogger(): RecordingLogger {
  const entries: LogEntry[] = [];
  const record =
    (level: LogLevel) =>
    (message: string, fields?: Record<string, unknown>): void => {
      entries.push({ level, message, fields: fields ?? {} });
    };
  const entriesAt = (...levels: LogLevel[]): LogEntry[] =>
    levels.length === 0 ? [...entries] : entries.filter((entry) => levels.includes(entry.level));
  return {
    debug: record('debug'),
    info: record('info'),
    warn: record('warn'),
    error: record('error'),
    entries,
    entriesAt,
    messages: (...levels) => entriesAt(...levels).map((entry) => entry.message),
    lines: (...levels) =>
      entriesAt(...levels).map((entry) => `${entry.message} ${JSON.stringify(entry.fields)}`),
  };
}

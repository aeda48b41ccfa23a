/**
 * The logger every Noa package accepts. A winston logger fits as is
 * (`logger.warn(message, meta)`); for pino use {@link fromPino}.
 */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

const loggerMethods = ['debug', 'info', 'warn', 'error'] as const;

/**
 * Whether `value` has the four methods of {@link Logger}: what a package's `logger` option is
 * checked against, so that a logger missing one is refused at construction rather than losing
 * that level's lines at run time.
 */
export function isLogger(value: unknown): value is Logger {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    loggerMethods.every((method) => typeof (value as Record<string, unknown>)[method] === 'function')
  );
}

const ignore = (): void => {};

/** A logger that drops everything: the default, so libraries stay quiet unless asked. */
export const silentLogger: Logger = { debug: ignore, info: ignore, warn: ignore, error: ignore };

/** The shape of a pino logger's level methods: `(fields, message)`. */
export interface PinoLike {
  debug(fields: object, message?: string): void;
  info(fields: object, message?: string): void;
  warn(fields: object, message?: string): void;
  error(fields: object, message?: string): void;
}

/** Adapts a pino logger, whose methods take the fields first, to {@link Logger}. */
export function fromPino(pino: PinoLike): Logger {
  return {
    debug: (message, fields) => pino.debug(fields ?? {}, message),
    info: (message, fields) => pino.info(fields ?? {}, message),
    warn: (message, fields) => pino.warn(fields ?? {}, message),
    error: (message, fields) => pino.error(fields ?? {}, message),
  };
}

/** Loggers whose failure has been reported already (one process warning each, not one per line). */
const reportedLoggers = new WeakSet<Logger>();

/**
 * Returns a logger whose every line carries `fields` (e.g. `{ component: 'rate-limiter' }`).
 * A line the underlying logger fails to write (it throws) is dropped, reported once per logger
 * as a process warning (`NOA_LOGGER_FAILED`): packages log from timers, where the throw would
 * crash the process, and from request paths, where it would fail the request being logged.
 */
export function childLogger(logger: Logger, fields: Record<string, unknown>): Logger {
  if (logger === silentLogger) return logger;
  const write = (level: keyof Logger, message: string, extra: Record<string, unknown> | undefined): void => {
    try {
      logger[level](message, { ...fields, ...extra });
    } catch (error) {
      if (reportedLoggers.has(logger)) return;
      reportedLoggers.add(logger);
      const reason = error instanceof Error ? error.message : String(error);
      process.emitWarning(`a Noa logger threw, its lines are dropped: ${reason}`, {
        code: 'NOA_LOGGER_FAILED',
      });
    }
  };
  return {
    debug: (message, extra) => write('debug', message, extra),
    info: (message, extra) => write('info', message, extra),
    warn: (message, extra) => write('warn', message, extra),
    error: (message, extra) => write('error', message, extra),
  };
}

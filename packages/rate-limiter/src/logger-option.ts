import type { Logger } from '@noa/core';
import { z } from 'zod';

const loggerMethods = ['debug', 'info', 'warn', 'error'] as const;

/**
 * The `logger` option of the limiter and of `RedisStore`: an object with the four methods the
 * package calls (winston as is, pino through core's `fromPino`). One missing would only fail
 * when its first line is written, and that line would be lost, so it is refused at construction.
 */
export const loggerOptionSchema = z.custom<Logger>(
  (value) =>
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    loggerMethods.every((method) => typeof (value as Record<string, unknown>)[method] === 'function'),
  'a Logger (debug, info, warn, error)',
);

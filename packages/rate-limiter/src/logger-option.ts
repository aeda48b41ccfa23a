import { isLogger, type Logger } from '@noa/core';
import { z } from 'zod';

/**
 * The `logger` option of the limiter and of `RedisStore`: an object with the four methods the
 * package calls (winston as is, pino through core's `fromPino`). One missing would only fail
 * when its first line is written, and that line would be lost, so it is refused at construction.
 */
export const loggerOptionSchema = z.custom<Logger>(isLogger, 'a Logger (debug, info, warn, error)');

import { randomBytes } from 'node:crypto';

/**
 * A name unique to one test run, safe as a Redis key prefix, a Postgres schema, a queue or
 * topic prefix: lower case letters, digits and underscores, starting with a letter.
 */
export function uniqueName(prefix = 't'): string {
  const clean = prefix.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  return `${clean}_${process.pid.toString(36)}_${randomBytes(4).toString('hex')}`;
}

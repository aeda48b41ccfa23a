import { randomBytes } from 'node:crypto';

const processPrefix = randomBytes(6).toString('base64url');
let counter = 0;

/** A short unique job id: a random per-process prefix and a counter (no syscall per id). */
export function newJobId(): string {
  counter += 1;
  return `${processPrefix}${counter.toString(36)}`;
}

import { PartFailure } from '@noa/core';

/**
 * Whether a store call failed because of one key's value, the store having answered: Redis's
 * `WRONGTYPE` (the key holds a string, a list… where the limiter keeps a hash or a sorted set:
 * another program's key under the same name, or one written by hand). It says nothing of the
 * store's health: its keys get the fail mode, but the breaker does not count it and `health()`
 * does not read it as an outage (one client hammering its broken key would otherwise open the
 * breaker for every key). Every other error (timeouts, `LOADING`, `BUSY`, `OOM`, `READONLY`,
 * connection errors) counts as before.
 */
export function isKeyValueError(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('WRONGTYPE');
}

/**
 * A call's failure as the breaker sees it: a {@link isKeyValueError} resolves as a core
 * `PartFailure` (an answer the breaker does not count, which the caller handles as the failure it
 * is); any other error is rethrown.
 */
export function uncountedIfKeyValue(error: unknown): PartFailure {
  if (isKeyValueError(error)) return new PartFailure(error);
  throw error;
}

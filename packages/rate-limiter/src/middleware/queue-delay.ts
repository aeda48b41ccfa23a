import type { ServerResponse } from 'node:http';
import { delay } from '@noa/core';

/**
 * Waits out a queued admission's `delayMs` (the queueing leaky bucket) before the route runs.
 * Resolves true once the delay has passed, or false as soon as the client goes away (the response
 * closes unfinished, or had already): the route then has nobody to answer, and the request's slot
 * in the queue is a live client's to take (see {@link RequestRefund.unserved}).
 */
export async function waitOutQueueDelay(res: ServerResponse, delayMs: number): Promise<boolean> {
  if (res.closed && !res.writableFinished) return false;
  const gone = new AbortController();
  const onClose = (): void => {
    if (!res.writableFinished) gone.abort();
  };
  res.once('close', onClose);
  try {
    await delay(delayMs, gone.signal);
    return true;
  } catch {
    return false;
  } finally {
    res.off('close', onClose);
  }
}

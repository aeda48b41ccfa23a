import { maxTimerMs } from '@noa/core';
import { z } from 'zod';

/** Options of `close()` (validated: `ConfigError` names the bad field). */
export const closeOptionsSchema = z
  .object({
    /**
     * How long `close()` waits for background work (early refreshes, factory runs whose callers
     * stopped waiting, background writes) before it aborts the `ctx.signal` of every factory run
     * still in progress and goes on closing. Default 5 000; 0: no wait, abort at once.
     */
    waitMs: z.number().int().min(0).max(maxTimerMs).default(5_000),
  })
  .strict();

/** Options of `close()`: `waitMs` (see {@link closeOptionsSchema}). */
export type CloseOptions = z.input<typeof closeOptionsSchema>;

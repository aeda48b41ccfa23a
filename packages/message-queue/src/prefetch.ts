/** Most jobs leased ahead by `prefetch: 'auto'` at a concurrency below this. */
export const autoPrefetchFloor = 16;

/**
 * How many jobs a worker leases ahead of its free slots under `prefetch: 'auto'`. While
 * handlers run shorter on average than a round trip to the backend, the round trip is the
 * bottleneck: lease as many jobs as the worker runs during one round trip
 * (`concurrency × exchangeMs / handlerMs`), at most `max(concurrency, 16)`, so a leased-ahead
 * job waits about one round trip for its slot. None while handlers are slower or before
 * anything has been measured: long jobs never sit leased in a busy worker while another
 * worker is idle.
 */
export function autoPrefetch(
  averageHandlerMs: number | undefined,
  averageExchangeMs: number | undefined,
  concurrency: number,
): number {
  if (averageHandlerMs === undefined || averageExchangeMs === undefined) return 0;
  if (averageHandlerMs >= averageExchangeMs) return 0;
  const perRoundTrip = Math.ceil((concurrency * averageExchangeMs) / Math.max(averageHandlerMs, 0.001));
  return Math.min(perRoundTrip, Math.max(concurrency, autoPrefetchFloor));
}

/** Exponentially weighted moving average (weight 1/8 for the newest sample). */
export function movingAverage(average: number | undefined, sample: number): number {
  return average === undefined ? sample : average + (sample - average) / 8;
}

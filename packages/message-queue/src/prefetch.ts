/**
 * How many jobs a worker leases ahead of its free slots under `prefetch: 'auto'`: up to its
 * concurrency while handlers run shorter on average than a round trip to the backend (the round
 * trip is then the bottleneck, and a leased-ahead job waits less than a round trip for its
 * slot), none while handlers are slower or before anything has been measured. Long jobs
 * therefore never sit leased in a busy worker while another worker is idle.
 */
export function autoPrefetch(
  averageHandlerMs: number | undefined,
  averageExchangeMs: number | undefined,
  concurrency: number,
): number {
  if (averageHandlerMs === undefined || averageExchangeMs === undefined) return 0;
  return averageHandlerMs < averageExchangeMs ? concurrency : 0;
}

/** Exponentially weighted moving average (weight 1/8 for the newest sample). */
export function movingAverage(average: number | undefined, sample: number): number {
  return average === undefined ? sample : average + (sample - average) / 8;
}

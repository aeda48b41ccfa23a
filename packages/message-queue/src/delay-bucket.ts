/**
 * Rounds a delay up to two significant digits (87 → 87, 1 234 → 1 300, 61 000 → 61 000). The
 * RabbitMQ provider keeps one TTL queue per bucket, so the number of delay queues stays small
 * while a job never runs early and at most ~10% late. Pure.
 */
export function delayBucket(delayMs: number): number {
  if (delayMs <= 0) return 0;
  const rounded = Math.ceil(delayMs);
  const magnitude = 10 ** Math.max(0, Math.floor(Math.log10(rounded)) - 1);
  return Math.ceil(rounded / magnitude) * magnitude;
}

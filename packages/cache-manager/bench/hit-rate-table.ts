/**
 * Prints the hit-rate table of docs/eviction.md: every policy on every trace, without the rest of
 * the benchmark (hit rates are deterministic, so one run is the result).
 * Run: node --conditions=@noa/source --import tsx bench/hit-rate-table.ts
 */
import type { EvictionPolicyName } from '../src/index.js';
import { hitRate, hitRateTraces } from './hit-rate.js';

const requests = 1_000_000;
const keySpace = 100_000;
const capacity = 1_000;
const columns: [EvictionPolicyName, string][] = [
  ['lru', 'LRU (lru-cache)'],
  ['lfu', 'LFU'],
  ['fifo', 'FIFO'],
  ['ttl', 'TTL-only'],
  ['adaptive', 'adaptive (W-TinyLFU)'],
];

console.log(`| trace | ${columns.map(([, title]) => title).join(' | ')} | adaptive / LRU |`);
console.log(`| --- | ${columns.map(() => '---').join(' | ')} | --- |`);
for (const { label, build } of hitRateTraces(requests, keySpace, capacity)) {
  const trace = build();
  const rates = new Map(columns.map(([policy]) => [policy, hitRate(policy, capacity, trace)]));
  const best = Math.max(...rates.values());
  const cells = columns.map(([policy]) => {
    const percent = `${(rates.get(policy)! * 100).toFixed(2)}%`;
    return rates.get(policy) === best ? `**${percent}**` : percent;
  });
  const ratio = (rates.get('adaptive')! / rates.get('lru')!).toFixed(2);
  console.log(`| ${label} | ${cells.join(' | ')} | ${ratio} |`);
}

/**
 * Smooth weighted round robin (nginx's algorithm) over the groups that have work. Each pick
 * adds every candidate's weight to its running credit, takes the candidate with the most
 * credit and charges it the total weight: over any window, group g is picked
 * weight(g)/Σweights of the time, interleaved rather than in bursts. Pure: the credits are
 * passed in and returned, so a Redis script and the memory provider share the same logic.
 */
export function pickGroup(
  candidates: readonly string[],
  weightOf: (group: string) => number,
  credits: Map<string, number>,
): string | undefined {
  let best: string | undefined;
  let bestCredit = Number.NEGATIVE_INFINITY;
  let total = 0;
  for (const group of candidates) {
    const weight = Math.max(weightOf(group), 0.000_001);
    total += weight;
    const credit = (credits.get(group) ?? 0) + weight;
    credits.set(group, credit);
    if (credit > bestCredit) {
      bestCredit = credit;
      best = group;
    }
  }
  if (best !== undefined) credits.set(best, bestCredit - total);
  return best;
}

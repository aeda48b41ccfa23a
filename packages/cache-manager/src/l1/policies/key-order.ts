/** The oldest key of an insertion-ordered set, without copying it. */
export function first(set: ReadonlySet<string>): string | undefined {
  for (const key of set) return key;
  return undefined;
}

/** Up to `limit` keys of `scores`, highest score first (the `hottest` of score-keeping policies). */
export function highestFirst(scores: ReadonlyMap<string, number>, limit: number): string[] {
  return [...scores]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([key]) => key);
}

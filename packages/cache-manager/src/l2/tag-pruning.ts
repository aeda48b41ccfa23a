/**
 * How often tagged writes prune their tag sets, and how much (see `RedisTier`'s `#pruneTag` and
 * docs/tags.md, "Tag sets stay bounded").
 */

/**
 * Members of a tag set one prune samples (`SRANDMEMBER <set> 64`, then one EXISTS per member):
 * what one prune costs Redis, whatever the set's size.
 */
export const PRUNE_SAMPLE = 64;

/**
 * The chance that a tag write prunes its tag's set. A member is added per write at most, and a
 * prune removes on average PRUNE_SAMPLE × (dead share) of them, so at PRUNE_SAMPLE ×
 * PRUNE_CHANCE = 4 the dead members settle at about a third of the live ones (4/3 of the live
 * keys in all); it must stay above 1, or nothing bounds the set. Per tag write that is, on
 * average, 1/16 of a prune: 1/8 of a round trip and 4 member checks. Random rather than every
 * 16th write: a count would prune the same tag of writes that carry several, always.
 */
export const PRUNE_CHANCE = 1 / 16;

let chanceInForce = PRUNE_CHANCE;

/**
 * Tests only (not exported by the package): sets the chance that a tag write prunes its set,
 * for a test that counts a write's Redis commands exactly (0) or wants every write to prune (1);
 * undefined restores {@link PRUNE_CHANCE}. Process-wide.
 */
export function pruneTagsWithChance(chance: number | undefined): void {
  chanceInForce = chance ?? PRUNE_CHANCE;
}

/** The tags of a write whose sets are to be pruned, each drawn with the chance in force; undefined for none. */
export function tagsToPrune(tags: readonly string[], draw: () => number = Math.random): string[] | undefined {
  let due: string[] | undefined;
  for (const tag of tags) {
    if (draw() >= chanceInForce) continue;
    due ??= [];
    due.push(tag);
  }
  return due;
}

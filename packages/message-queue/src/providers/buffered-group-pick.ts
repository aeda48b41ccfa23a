import { pickGroup } from '../fair-dispatch.js';

/** What a consumer knows of one job group at a pick: deliveries buffered here, and more on the way. */
export interface BufferedGroup {
  buffered: number;
  /** Empty here, but the broker holds ready messages and may push them (its window has room). */
  coming: boolean;
}

/** The outcome of {@link pickBufferedGroup}. */
export type BufferedGroupPick = { take: string } | { wait: string } | undefined;

/**
 * Fair dispatch over deliveries buffered per job group (the RabbitMQ provider with a state
 * store): smooth weighted round robin over the groups that have deliveries here or on the way.
 * Picking a group whose deliveries are only on the way returns `wait` with the credits left as
 * they were, so the group keeps its turn until the broker's push arrives instead of giving it
 * to the others. `undefined`: no group has work. Pure (the credits are updated in place).
 */
export function pickBufferedGroup(
  groups: ReadonlyMap<string, BufferedGroup>,
  weightOf: (group: string) => number,
  credits: Map<string, number>,
): BufferedGroupPick {
  const candidates: string[] = [];
  for (const [group, state] of groups) if (state.buffered > 0 || state.coming) candidates.push(group);
  if (candidates.length === 0) return undefined;
  const before = candidates.length > 1 ? new Map(credits) : undefined;
  const group = candidates.length === 1 ? candidates[0]! : pickGroup(candidates, weightOf, credits)!;
  if (groups.get(group)!.buffered > 0) return { take: group };
  if (before) {
    credits.clear();
    for (const [name, credit] of before) credits.set(name, credit);
  }
  return { wait: group };
}

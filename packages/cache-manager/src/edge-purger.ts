/**
 * The CDN tier's hook: when `deleteByTag` invalidates a tag tied to the edge, the cache calls
 * `purgeTags` so the CDN drops its copies too. `@noa/cdn-manager` implements it; any object
 * with this shape works (a recording stub in tests).
 */
export interface EdgePurger {
  /** Purges every edge object carrying one of `tags` (surrogate keys / cache tags). */
  purgeTags(tags: readonly string[]): Promise<void>;
}

/**
 * Keys, tags, namespace names and the prefix reach Redis (key names, tag sets, bus messages,
 * entries' tag lists) as UTF-8, where every lone surrogate (half of an emoji cut by `slice`)
 * becomes U+FFFD: `'x\uD800'` and `'x\uD801'` would name one Redis key, and a tag's members
 * would decode under another tag than the one deleted. So such text is refused, on every
 * configuration (code that adds Redis later must not find its keys refused then).
 */

/** `String.prototype.isWellFormed` (ES2024; Node 20+), which the ES2023 lib does not declare. */
type WellFormedCheck = { isWellFormed(): boolean };

/** True when `text` holds no lone surrogate: it survives UTF-8 unchanged. */
export function isWellFormed(text: string): boolean {
  return (text as unknown as WellFormedCheck).isWellFormed();
}

/** The message of a refused key, tag or name. */
export const illFormedMessage =
  'must be well-formed UTF-16, without a lone surrogate (Redis keys are UTF-8, where each becomes U+FFFD and two keys would be one); text cut by slice() can be mended with toWellFormed() first';

import type { JobErrorEntry } from './job-record.js';

/** The marker a cut text ends with; its number is the length (UTF-16 units) before any cut. */
const cutMarker = /… \(truncated from (\d+) characters\)$/;

/**
 * `text` cut to `maxChars` UTF-16 units (not inside a surrogate pair) and saying so, or `text`
 * when it fits. A text cut before keeps its first length in the marker.
 */
export function cutText(text: string, maxChars: number): string {
  if (text.length <= maxChars) return text;
  const earlier = cutMarker.exec(text);
  const original = earlier ? Number(earlier[1]) : text.length;
  const body = earlier ? text.slice(0, earlier.index) : text;
  let end = Math.min(maxChars, body.length);
  const last = body.charCodeAt(end - 1);
  if (end > 0 && last >= 0xd800 && last <= 0xdbff) end -= 1;
  return `${body.slice(0, end)}… (truncated from ${original} characters)`;
}

/** The longest `name` or `code` a cut history keeps (they are short unless something is wrong). */
const maxLabelChars = 256;

/**
 * The newest `keep` entries of an error history, each message cut to `maxChars` (and its name
 * and code to 256) with a marker: what a record too big for the backend stores instead.
 */
export function cutHistory(
  errors: readonly JobErrorEntry[],
  keep: number,
  maxChars: number,
): JobErrorEntry[] {
  return errors.slice(-keep).map((entry) => {
    const cut: JobErrorEntry = {
      ...entry,
      name: cutText(entry.name, maxLabelChars),
      message: cutText(entry.message, maxChars),
    };
    if (entry.code !== undefined) cut.code = cutText(entry.code, maxLabelChars);
    return cut;
  });
}

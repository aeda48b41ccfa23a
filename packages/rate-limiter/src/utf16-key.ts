import { hash } from 'node:crypto';

/** An unpaired surrogate (in `u` mode a pair is one code point, not of category Cs). */
const loneSurrogate = /\p{Cs}/u;

/** Leads the UTF-16 bytes of a text that is not well-formed: 0xFF is no byte of UTF-8. */
const utf16Marker = Buffer.from([0xff]);

/**
 * True when `text` is well-formed Unicode (no lone UTF-16 surrogate). Only such text survives
 * the UTF-8 that Redis keys and digests take: it writes every lone surrogate as U+FFFD, so
 * `"\ud800"` and `"\udbff"` would name one key.
 */
export function isWellFormedText(text: string): boolean {
  return !loneSurrogate.test(text);
}

/**
 * SHA-256 (base64url) of `text`'s UTF-16 code units after a 0xFF byte: distinct for every
 * distinct string, well-formed or not, and apart from any digest of UTF-8 bytes.
 */
export function utf16Digest(text: string): string {
  return hash('sha256', Buffer.concat([utf16Marker, Buffer.from(text, 'utf16le')]), 'base64url');
}

/**
 * `text` up to and including the last `:` before its first lone surrogate ('' when there is
 * none): well-formed, and for a limiter's key `<prefix>:<rule>:<fingerprint>:<key>` at least its
 * namespace (a prefix and a role are well-formed).
 */
export function wellFormedHead(text: string): string {
  const first = loneSurrogate.exec(text);
  if (first === null) return text;
  return text.slice(0, text.lastIndexOf(':', first.index) + 1);
}

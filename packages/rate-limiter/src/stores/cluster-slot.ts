/** CRC16-CCITT (XMODEM) table, the checksum Redis Cluster hashes keys with. */
const crcTable = new Uint16Array(256);
for (let byte = 0; byte < 256; byte += 1) {
  let crc = byte << 8;
  for (let bit = 0; bit < 8; bit += 1)
    crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  crcTable[byte] = crc;
}

const encoder = new TextEncoder();

/**
 * The Redis Cluster slot (0–16383) of `key`, by the server's rule: only the part inside the
 * first `{…}` is hashed when it is non-empty. Used to tell which server (hence which clock)
 * answers a key; ioredis keeps the slot map but not this function in its public API.
 *
 * Written here rather than taken from `cluster-key-slot` (the package ioredis routes with): that
 * one hashes `a{}b{c}` as `c` (slot 15725) where Redis hashes the whole key (7353), since an
 * empty first tag makes Redis stop looking; the integration test compares every case with the
 * servers' own `CLUSTER KEYSLOT`.
 */
export function clusterSlot(key: string): number {
  let hashed = key;
  const open = key.indexOf('{');
  if (open !== -1) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) hashed = key.slice(open + 1, close);
  }
  let crc = 0;
  // ASCII (the common key) hashes its char codes, which are its UTF-8 bytes: no encoding.
  for (let index = 0; index < hashed.length; index += 1) {
    const code = hashed.charCodeAt(index);
    if (code >= 0x80) return utf8Slot(hashed);
    crc = ((crc << 8) & 0xffff) ^ crcTable[((crc >> 8) ^ code) & 0xff]!;
  }
  return crc & 16_383;
}

/**
 * The ioredis `keyPrefix` of `client` ('' for none): ioredis writes it in front of every key it
 * sends, and routes a command by the slot of the prefixed key.
 */
export function keyPrefixOf(client: { options?: unknown }): string {
  const keyPrefix = (client.options as { keyPrefix?: unknown } | undefined)?.keyPrefix;
  return typeof keyPrefix === 'string' ? keyPrefix : '';
}

/**
 * True when the first `{` of `text` is followed at once by `}`: an empty hash tag, so Redis
 * Cluster hashes every key that starts with `text` whole, and the hash tag a store puts after it
 * (`{<key>}`) no longer keeps a caller's keys in one slot.
 */
export function hasEmptyHashTag(text: string): boolean {
  const open = text.indexOf('{');
  return open !== -1 && text.charCodeAt(open + 1) === 0x7d;
}

/**
 * The whole hash tag (`{app}`) that `text` holds before any key a store writes after it, or
 * undefined: its first `{` closed by a `}` with something between. Every key that starts with
 * `text` then hashes by that tag, so all of them share one Redis Cluster slot.
 */
export function wholeHashTagOf(text: string): string | undefined {
  const open = text.indexOf('{');
  if (open === -1) return undefined;
  const close = text.indexOf('}', open + 1);
  return close > open + 1 ? text.slice(open, close + 1) : undefined;
}

function utf8Slot(hashed: string): number {
  let crc = 0;
  for (const byte of encoder.encode(hashed))
    crc = ((crc << 8) & 0xffff) ^ crcTable[((crc >> 8) ^ byte) & 0xff]!;
  return crc & 16_383;
}

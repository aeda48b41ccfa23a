import { BlockList, isIP } from 'node:net';

/** The 8 16-bit groups of a valid IPv6 address (zone id dropped, IPv4 tail converted). */
export function ipv6Groups(address: string): number[] {
  const zoneless = address.split('%')[0]!;
  const toGroups = (part: string): number[] => {
    if (part === '') return [];
    const groups: number[] = [];
    for (const piece of part.split(':')) {
      if (piece.includes('.')) {
        const [a = 0, b = 0, c = 0, d = 0] = piece.split('.').map(Number);
        groups.push((a << 8) | b, (c << 8) | d);
      } else groups.push(Number.parseInt(piece, 16));
    }
    return groups;
  };
  const [head = '', tail] = zoneless.split('::');
  const left = toGroups(head);
  if (tail === undefined) return left;
  const right = toGroups(tail);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}

/**
 * The IPv4 address of the IPv4-mapped IPv6 address whose groups are `groups` (`::ffff:1.2.3.4`
 * however written: `::FFFF:…`, `0:0:0:0:0:ffff:…`, hex groups), else undefined.
 */
export function mappedIpv4(groups: readonly number[]): string | undefined {
  if (
    groups[5] !== 0xffff ||
    groups[0] !== 0 ||
    groups[1] !== 0 ||
    groups[2] !== 0 ||
    groups[3] !== 0 ||
    groups[4] !== 0
  )
    return undefined;
  return `${groups[6]! >> 8}.${groups[6]! & 0xff}.${groups[7]! >> 8}.${groups[7]! & 0xff}`;
}

/** The prefix an IPv4-mapped range needs to lie within the mapped block `::ffff:0:0/96`. */
const mappedPrefix = 96;

/**
 * True when `value` is an IPv4-mapped range too wide to be one (`::ffff:10.0.0.0/8`, which is
 * `::/8`: every IPv4 client and more, where `10.0.0.0/8` was meant).
 */
export function isWideMappedRange(value: string): boolean {
  const [address = '', prefix] = value.split('/');
  return (
    prefix !== undefined &&
    isIP(address) === 6 &&
    Number(prefix) < mappedPrefix &&
    mappedIpv4(ipv6Groups(address)) !== undefined
  );
}

/** True when `value` is an IPv4/IPv6 address or a CIDR range (`10.0.0.0/8`, `2001:db8::/32`). */
export function isAddressOrCidr(value: string): boolean {
  const [address, prefix, ...rest] = value.split('/');
  if (rest.length > 0 || address === undefined) return false;
  const family = isIP(address);
  if (family === 0) return false;
  if (prefix === undefined) return true;
  if (!/^\d{1,3}$/.test(prefix)) return false;
  return Number(prefix) <= (family === 4 ? 32 : 128);
}

/**
 * A client address as lists and keys compare it: without the source port that some proxies
 * append (Azure Application Gateway writes `ip:port` and `[ipv6]:port` into X-Forwarded-For,
 * which Express then reports as `req.ip`: with the port, every connection would be a new client),
 * and without the IPv4-mapped prefix that dual-stack sockets report (`::ffff:1.2.3.4`).
 */
export function normalizeAddress(address: string): string {
  const colon = address.indexOf(':');
  if (colon < 0) return address;
  if (address.charCodeAt(0) === 0x5b) {
    // `[ipv6]` or `[ipv6]:port`.
    const end = address.indexOf(']');
    const rest = address.slice(end + 1);
    const inner = address.slice(1, end);
    if (end > 0 && (rest === '' || /^:\d{1,5}$/.test(rest)) && isIP(inner) === 6)
      return normalizeAddress(inner);
    return address;
  }
  // One colon is never IPv6 (which has at least two): `a.b.c.d:port`.
  if (colon === address.lastIndexOf(':')) {
    const host = address.slice(0, colon);
    return isIP(host) === 4 && /^\d{1,5}$/.test(address.slice(colon + 1)) ? host : address;
  }
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

/**
 * A set of addresses and CIDR ranges (IPv4 and IPv6) on `node:net`'s BlockList, one per family:
 * an IPv4 client (however its socket writes it: `::ffff:1.2.3.4`) is in the set when an IPv4
 * entry or an IPv4-mapped one (`::ffff:10.0.0.0/104`) holds it, an IPv6 client when an IPv6
 * entry does. One BlockList would also match IPv4 clients against every IPv6 range holding the
 * mapped block (`::/0`, `::/8`, `::/80`): `allow: ['::/0']`, every IPv6 client, would have
 * exempted every IPv4 client too.
 */
export class IpList {
  readonly size: number;
  readonly #ipv4 = new BlockList();
  readonly #ipv6 = new BlockList();

  constructor(entries: readonly string[]) {
    for (const entry of entries) {
      const [address = '', prefix] = entry.split('/');
      const bits = prefix === undefined ? undefined : Number(prefix);
      if (isIP(address) === 4) {
        if (bits === undefined) this.#ipv4.addAddress(address, 'ipv4');
        else this.#ipv4.addSubnet(address, bits, 'ipv4');
        continue;
      }
      const ipv4 = mappedIpv4(ipv6Groups(address));
      if (ipv4 !== undefined && (bits === undefined || bits >= mappedPrefix)) {
        if (bits === undefined) this.#ipv4.addAddress(ipv4, 'ipv4');
        else this.#ipv4.addSubnet(ipv4, bits - mappedPrefix, 'ipv4');
      } else if (bits === undefined) this.#ipv6.addAddress(address, 'ipv6');
      else this.#ipv6.addSubnet(address, bits, 'ipv6');
    }
    this.size = entries.length;
  }

  /** True when `address` is in the list (IPv4-mapped IPv6 addresses are IPv4 clients). */
  has(address: string | undefined): boolean {
    if (this.size === 0 || address === undefined) return false;
    const normalized = normalizeAddress(address);
    const family = isIP(normalized);
    if (family === 4) return this.#ipv4.check(normalized, 'ipv4');
    if (family === 0) return false;
    // Every spelling of a mapped address has its ffff group: others need no parsing.
    const ipv4 = /ffff/i.test(normalized) ? mappedIpv4(ipv6Groups(normalized)) : undefined;
    return ipv4 === undefined ? this.#ipv6.check(normalized, 'ipv6') : this.#ipv4.check(ipv4, 'ipv4');
  }
}

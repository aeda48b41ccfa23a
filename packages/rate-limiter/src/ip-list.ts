import { BlockList, isIP } from 'node:net';

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

/** A set of addresses and CIDR ranges (IPv4 and IPv6) on `node:net`'s BlockList. */
export class IpList {
  readonly size: number;
  readonly #list = new BlockList();

  constructor(entries: readonly string[]) {
    for (const entry of entries) {
      const [address = '', prefix] = entry.split('/');
      const type = isIP(address) === 6 ? 'ipv6' : 'ipv4';
      if (prefix === undefined) this.#list.addAddress(address, type);
      else this.#list.addSubnet(address, Number(prefix), type);
    }
    this.size = entries.length;
  }

  /** True when `address` is in the list (IPv4-mapped IPv6 addresses match their IPv4 entries). */
  has(address: string | undefined): boolean {
    if (this.size === 0 || address === undefined) return false;
    const normalized = normalizeAddress(address);
    const family = isIP(normalized);
    if (family === 0) return false;
    return this.#list.check(normalized, family === 6 ? 'ipv6' : 'ipv4');
  }
}
